package siteagent

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// proxyDialer returns a dialer that reaches the coordinator through an
// HTTP(S) proxy with CONNECT, as hospital networks require. Credentials in
// the proxy URL are sent as Basic proxy authorisation.
func proxyDialer(proxy *url.URL) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		host := proxy.Host
		if proxy.Port() == "" {
			if proxy.Scheme == "https" {
				host = net.JoinHostPort(proxy.Hostname(), "443")
			} else {
				host = net.JoinHostPort(proxy.Hostname(), "3128")
			}
		}
		conn, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			return nil, fmt.Errorf("dial proxy %s: %w", host, err)
		}
		if proxy.Scheme == "https" {
			tc := tls.Client(conn, &tls.Config{ServerName: proxy.Hostname(), MinVersion: tls.VersionTLS12})
			if err := tc.HandshakeContext(ctx); err != nil {
				conn.Close()
				return nil, fmt.Errorf("TLS to proxy %s: %w", host, err)
			}
			conn = tc
		}
		if dl, ok := ctx.Deadline(); ok {
			conn.SetDeadline(dl)
			defer conn.SetDeadline(time.Time{})
		}
		req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: addr}, Host: addr, Header: http.Header{}}
		if u := proxy.User; u != nil {
			p, _ := u.Password()
			req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+p)))
		}
		if err := req.Write(conn); err != nil {
			conn.Close()
			return nil, fmt.Errorf("CONNECT via proxy: %w", err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("CONNECT via proxy: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			conn.Close()
			return nil, fmt.Errorf("proxy %s refused CONNECT to %s: %s", host, addr, resp.Status)
		}
		if br.Buffered() > 0 {
			conn.Close()
			return nil, fmt.Errorf("proxy sent unexpected data after CONNECT")
		}
		return conn, nil
	}
}
