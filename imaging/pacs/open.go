package pacs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Options bound and pace what a Source asks of the PACS. The zero value
// takes the defaults below.
type Options struct {
	// Timeout bounds the wait for each answer and each stall while it is
	// read (default 2m); a long transfer that keeps moving is not cut.
	Timeout time.Duration
	// RequestsPerSecond paces requests (0: no pacing).
	RequestsPerSecond float64
	// Concurrency is the most requests in flight at once (default 2).
	Concurrency int
	// MaxInstanceBytes bounds one retrieved instance (default 1 GiB, what
	// the imaging reader accepts).
	MaxInstanceBytes int64
	// MaxInstancesPerSeries bounds the instances one series may hold
	// (default 100000).
	MaxInstancesPerSeries int
	// MaxResults bounds the studies, series or instances one query may
	// find (default 100000): a broader query is refused, not truncated.
	MaxResults int
	// MaxQueryBytes bounds one page of query results (default 64 MiB).
	MaxQueryBytes int64
	// Client carries TLS and proxy settings; nil means a client with the
	// environment's proxy and the system roots.
	Client *http.Client
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 2
	}
	if o.MaxInstanceBytes <= 0 {
		o.MaxInstanceBytes = 1 << 30
	}
	if o.MaxInstancesPerSeries <= 0 {
		o.MaxInstancesPerSeries = 100000
	}
	if o.MaxResults <= 0 {
		o.MaxResults = 100000
	}
	if o.MaxQueryBytes <= 0 {
		o.MaxQueryBytes = 64 << 20
	}
	return o
}

// ErrUnsupported is returned by Open for a URL whose scheme no Source
// implements.
var ErrUnsupported = errors.New("unsupported PACS url")

// Opener opens a Source of a registered URL scheme. Options bound it;
// Open adds the throttle.
type Opener func(u *url.URL, opts Options) (Source, error)

var (
	openersMu sync.Mutex
	openers   = map[string]Opener{}
)

// Register makes Open handle URLs of scheme with open. Protocol packages
// that import this one register themselves (imaging/dimse registers
// "dicom"), in the manner of database/sql drivers, since this package
// cannot import them. A scheme registered twice panics: it is a
// programming error.
func Register(scheme string, open Opener) {
	openersMu.Lock()
	defer openersMu.Unlock()
	if _, dup := openers[scheme]; dup || scheme == "http" || scheme == "https" {
		panic("pacs: scheme " + scheme + " registered twice")
	}
	openers[scheme] = open
}

// Open is the one place where a PACS URL's scheme picks the protocol:
// http:// and https:// are DICOMweb (the URL is the service root, e.g.
// https://pacs.example.org/dicom-web); dicom://AET@host:port is DIMSE
// (imaging/dimse, which the site agent links in). Sources of registered
// schemes pass through the same throttle as DICOMweb's requests, one
// operation (a query, a series' retrieval) at a time per slot.
func Open(rawURL string, opts Options) (Source, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("pacs url: %w", err)
	}
	openersMu.Lock()
	open := openers[u.Scheme]
	openersMu.Unlock()
	switch {
	case u.Scheme == "http" || u.Scheme == "https":
		return NewDICOMweb(u, opts)
	case open != nil:
		opts = opts.withDefaults()
		src, err := open(u, opts)
		if err != nil {
			return nil, err
		}
		return &throttled{Source: src, thr: newThrottle(opts.Concurrency, opts.RequestsPerSecond)}, nil
	case u.Scheme == "dicom":
		return nil, fmt.Errorf("pacs %s: this program does not include the DIMSE client (import imaging/dimse): %w", u.Redacted(), ErrUnsupported)
	default:
		return nil, fmt.Errorf("pacs url %q: %w: give http(s)://host/dicom-web-root for DICOMweb or dicom://AET@host:port for DIMSE", u.Redacted(), ErrUnsupported)
	}
}

// throttled paces a Source's operations with the throttle DICOMweb uses
// per request.
type throttled struct {
	Source
	thr *throttle
}

func (t *throttled) FindSeries(ctx context.Context, q Query) ([]Series, error) {
	release, err := t.thr.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return t.Source.FindSeries(ctx, q)
}

func (t *throttled) Retrieve(ctx context.Context, s Series, store func(string, []byte) error) error {
	release, err := t.thr.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	return t.Source.Retrieve(ctx, s, store)
}
