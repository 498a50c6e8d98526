// Command concord-healthcheck is the health probe inside Concord's images,
// which have no shell or curl: it GETs one loopback URL and exits 0 when the
// answer is 200, 1 otherwise, with the reason on stderr.
//
//	concord-healthcheck http://127.0.0.1:9101/healthz
//
// Container runtimes without HTTP probes (compose, podman, docker) run it as
// the HEALTHCHECK command. It refuses any host but loopback, so that a
// probe cannot be turned into a way out of the container.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: concord-healthcheck http://127.0.0.1:PORT/healthz")
		return 2
	}
	u, err := url.Parse(args[0])
	if err != nil || u.Scheme != "http" {
		fmt.Fprintf(stderr, "concord-healthcheck: %q: want an http:// URL\n", args[0])
		return 2
	}
	if ip := net.ParseIP(u.Hostname()); (ip == nil || !ip.IsLoopback()) && u.Hostname() != "localhost" {
		fmt.Fprintf(stderr, "concord-healthcheck: %q: only loopback addresses are probed\n", args[0])
		return 2
	}
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u.String())
	if err != nil {
		fmt.Fprintf(stderr, "concord-healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "concord-healthcheck: %s: %s %s\n", u, resp.Status, body)
		return 1
	}
	return 0
}
