package fhirr4

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	c "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	bcr "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	oopb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/operation_outcome_go_proto"
)

// Limits on what Deliver sends and reads.
const (
	// MaxBundleBytes bounds the Bundle Deliver posts; ours are a few KiB.
	MaxBundleBytes = 4 << 20
	// maxResponseBytes bounds the response body read; a transaction response
	// echoes the resources, so it is a few times the Bundle at most.
	maxResponseBytes = 8 << 20
	// maxReasonBytes bounds DeliveryError.Reason.
	maxReasonBytes = 2048
)

// Client posts bundles to a FHIR base URL.
type Client struct {
	// Base is the FHIR server's base URL (http or https), e.g.
	// https://ehr.example.org/fhir/R4. A transaction Bundle is posted to it.
	Base string
	// HTTP sends the requests; nil means http.DefaultClient. Set its
	// Transport for TLS and proxies, its Timeout for a bound per request.
	HTTP *http.Client
	// Header is added to every request, e.g. Authorization: Bearer ….
	// Content-Type and Accept are set by Deliver and cannot be overridden.
	Header http.Header
}

// DeliveryError is the error of every failed Deliver.
type DeliveryError struct {
	Status    int    // HTTP status; 0 when no response came
	Retryable bool   // 5xx, 408, 429 and network errors: the same Bundle may be posted again later
	Reason    string // why, with the server's OperationOutcome text when it sent one
	err       error
}

func (e *DeliveryError) Error() string {
	if e.Status == 0 {
		return "fhir delivery: " + e.Reason
	}
	return fmt.Sprintf("fhir delivery: HTTP %d: %s", e.Status, e.Reason)
}

// Unwrap gives the network or context error, when there was one.
func (e *DeliveryError) Unwrap() error { return e.err }

// Deliver posts one transaction Bundle to c.Base. It returns nil when the
// server answered 2xx with a transaction-response Bundle; otherwise a
// *DeliveryError. A Bundle from Bundle is safe to post again after any error:
// its conditional creates make the second post create nothing new.
//
// Reason carries the server's own words, which may quote the resource; treat
// it like the Bundle itself and keep it out of logs shipped off-site.
func (c *Client) Deliver(ctx context.Context, bundle []byte) error {
	base, err := c.baseURL()
	if err != nil {
		return &DeliveryError{Reason: err.Error()}
	}
	if len(bundle) == 0 || len(bundle) > MaxBundleBytes {
		return &DeliveryError{Reason: fmt.Sprintf("bundle is %d bytes, want 1 to %d", len(bundle), MaxBundleBytes)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base, bytes.NewReader(bundle))
	if err != nil {
		return &DeliveryError{Reason: "build request: " + err.Error(), err: err}
	}
	for k, vs := range c.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return &DeliveryError{Retryable: true, Reason: "post to " + redactURL(base) + ": " + rootCause(err), err: err}
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if readErr != nil {
		return &DeliveryError{Status: resp.StatusCode, Retryable: true,
			Reason: "read response: " + rootCause(readErr), err: readErr}
	}
	if len(body) > maxResponseBytes {
		return &DeliveryError{Status: resp.StatusCode, Retryable: resp.StatusCode/100 != 2,
			Reason: fmt.Sprintf("response over %d bytes", maxResponseBytes)}
	}
	if resp.StatusCode/100 == 2 {
		return checkTransactionResponse(resp.StatusCode, body)
	}
	return &DeliveryError{
		Status:    resp.StatusCode,
		Retryable: retryableStatus(resp.StatusCode),
		Reason:    serverReason(resp.StatusCode, body),
	}
}

func (c *Client) baseURL() (string, error) {
	u, err := url.Parse(c.Base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("Client.Base must be an http or https URL of a FHIR server")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("Client.Base must not carry a query or fragment")
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

func retryableStatus(s int) bool {
	return s >= 500 || s == http.StatusTooManyRequests || s == http.StatusRequestTimeout
}

// checkTransactionResponse refuses a 2xx that is not a FHIR transaction
// response, such as a login page served by a proxy in front of the server:
// then nothing says the results were stored.
func checkTransactionResponse(status int, body []byte) error {
	res, err := parse(body)
	if err == nil {
		if b := res.GetBundle(); b != nil && b.GetType().GetValue() == c.BundleTypeCode_TRANSACTION_RESPONSE {
			return nil
		}
	}
	return &DeliveryError{Status: status, Reason: "answer is not a FHIR transaction-response Bundle: is Client.Base the FHIR base URL? (" + snippet(body) + ")"}
}

// serverReason is the text of the server's OperationOutcome, or the start of
// whatever else it sent.
func serverReason(status int, body []byte) string {
	if res, err := parse(body); err == nil {
		if oo := res.GetOperationOutcome(); oo != nil {
			if s := outcomeText(oo); s != "" {
				return bound(s)
			}
		}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return http.StatusText(status)
	}
	return snippet(body)
}

func outcomeText(oo *oopb.OperationOutcome) string {
	var parts []string
	for _, is := range oo.GetIssue() {
		var p []string
		if s := is.GetSeverity().GetValue().String(); s != "" {
			p = append(p, strings.ToLower(s))
		}
		for _, e := range is.GetExpression() {
			p = append(p, e.GetValue())
		}
		if t := is.GetDetails().GetText().GetValue(); t != "" {
			p = append(p, t)
		}
		if d := is.GetDiagnostics().GetValue(); d != "" {
			p = append(p, d)
		}
		parts = append(parts, strings.Join(p, " "))
	}
	return strings.Join(parts, "; ")
}

// parse reads a FHIR R4 resource with the google/fhir unmarshaller, without
// profile validation: the server's answer is read for its meaning, and a
// server's small liberties must not hide its error message.
func parse(body []byte) (*bcr.ContainedResource, error) {
	u, err := jsonformat.NewUnmarshallerWithoutValidation("UTC", fhirversion.R4)
	if err != nil {
		return nil, err
	}
	m, err := u.Unmarshal(body)
	if err != nil {
		return nil, err
	}
	cr, ok := m.(*bcr.ContainedResource)
	if !ok {
		return nil, fmt.Errorf("unexpected %T", m)
	}
	return cr, nil
}

func snippet(body []byte) string {
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, string(body))
	return bound(strings.TrimSpace(s))
}

func bound(s string) string {
	if len(s) <= maxReasonBytes {
		return s
	}
	return strings.ToValidUTF8(s[:maxReasonBytes], "") + "…"
}

// rootCause drops the URL net/http repeats in its errors (redactURL already
// named it) and keeps the cause.
func rootCause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// redactURL drops user info, which may hold a password.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "the FHIR base"
	}
	return u.Redacted()
}
