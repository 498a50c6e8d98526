package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/coordinator/round"
	"github.com/concord-fl/concord/pki"
)

// Revocation takes effect on open connections, not only on new calls (the
// authorizer refuses those): every tick the coordinator looks up the
// certificate behind each open task stream and upload. A revoked, expired or
// unknown certificate closes the site's task stream, stops its uploads in
// flight and, unless the site holds another valid certificate, removes it
// from every open round (its delivery in a round not yet closed is dropped).
// Where certificates rotate (RotatingInventory), an expired one whose
// holder has renewed closes nothing.

// inflight is an upload in progress.
type inflight struct {
	site, serial string
	cancel       context.CancelCauseFunc
}

// trackUpload registers an upload so revocation can stop it; the returned
// context ends when it does. Call release when the upload ends.
func (c *Coordinator) trackUpload(ctx context.Context, id Identity) (context.Context, func(), error) {
	ctx, cancel := context.WithCancelCause(ctx)
	u := &inflight{site: id.Name, serial: id.Serial, cancel: cancel}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revoked[id.Serial] {
		cancel(nil)
		return nil, nil, status.Errorf(codes.PermissionDenied, "the certificate of site %s was revoked", id.Name)
	}
	open := 0
	for o := range c.uploads {
		if o.site == id.Name {
			open++
		}
	}
	if open >= maxUploadsPerSite {
		cancel(nil)
		return nil, nil, status.Errorf(codes.ResourceExhausted, "site %s already has %d uploads open; finish or cancel one first", id.Name, open)
	}
	c.uploads[u] = struct{}{}
	return ctx, func() {
		c.mu.Lock()
		delete(c.uploads, u)
		c.mu.Unlock()
		cancel(nil)
	}, nil
}

// checkRevocations looks up the certificate of every open stream.
func (c *Coordinator) checkRevocations() {
	c.mu.Lock()
	serials := map[string]string{}
	for _, s := range c.sessions {
		serials[s.serial] = s.site
	}
	for u := range c.uploads {
		serials[u.serial] = u.site
	}
	c.mu.Unlock()
	for serial, site := range serials {
		why := c.certProblem(serial)
		if why == "" || why == whyExpired && c.renewed(site, serial) {
			continue
		}
		c.revokeSite(site, serial, why)
	}
}

// RotatingInventory is an optional ability of Config.Inventory where
// certificates are short-lived and renewed by their holders
// (internal/vaultauth.Inventory). HasActive reports whether role/name
// holds a certificate other than except that is neither revoked nor
// expired at now.
//
// With such an inventory, a stream opened with a certificate that has
// since expired stays open while its holder has renewed: the holder proved
// the same identity, and closing the stream would drop every long stream
// at each renewal. A revoked or unknown certificate still closes its
// streams at once.
type RotatingInventory interface {
	HasActive(role pki.Role, name, except string, now time.Time) bool
}

const whyExpired = "certificate expired"

// renewed reports whether site holds a valid certificate other than
// serial, in a RotatingInventory.
func (c *Coordinator) renewed(site, serial string) bool {
	r, ok := c.cfg.Inventory.(RotatingInventory)
	return ok && r.HasActive(pki.RoleSite, site, serial, c.now())
}

// certProblem says why a certificate may no longer be used, or "". An
// inventory that cannot be read now is no reason to tear streams down (the
// authorizer already refuses new calls while it is unreadable).
func (c *Coordinator) certProblem(serial string) string {
	e, err := c.cfg.Inventory.Lookup(serial)
	switch {
	case errors.Is(err, pki.ErrNotFound):
		return "certificate is no longer in the consortium inventory"
	case err != nil:
		return ""
	case e.Revoked:
		return "certificate was revoked"
	case c.now().After(e.NotAfter):
		return whyExpired
	}
	return ""
}

// inventory returns the whole inventory when the source can give it.
func (c *Coordinator) inventory() *pki.Inventory {
	src, ok := c.cfg.Inventory.(interface {
		Inventory() (*pki.Inventory, error)
	})
	if !ok {
		if inv, ok := c.cfg.Inventory.(*pki.Inventory); ok {
			return inv
		}
		return nil
	}
	inv, err := src.Inventory()
	if err != nil {
		return nil
	}
	return inv
}

// revokeSite ends everything the certificate serial of site has open.
func (c *Coordinator) revokeSite(site, serial, why string) {
	stillValid := c.renewed(site, serial)
	if inv := c.inventory(); inv != nil {
		stillValid = len(inv.Active(pki.RoleSite, site, c.now())) > 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revoked[serial] {
		return
	}
	c.revoked[serial] = true
	st := status.New(codes.PermissionDenied, fmt.Sprintf("site %s: %s (serial %s); the coordinator closed its streams", site, why, serial))
	closed := false
	if s := c.sessions[site]; s != nil && s.serial == serial {
		s.closeWith(st)
		closed = true
	}
	stopped := 0
	for u := range c.uploads {
		if u.serial == serial {
			u.cancel(st.Err())
			stopped++
		}
	}
	var removed []string
	if !stillValid {
		for _, id := range c.order {
			j := c.jobs[id]
			if j.m.Done() {
				continue
			}
			st := j.m.State()
			_, holder := st.Points[site]
			if slices.Contains(st.Members, site) || holder || st.Connected[site] {
				removed = append(removed, id)
			}
			c.stepLocked(j, round.Event{Type: round.EvRevoked, Now: c.now(), Site: site, Reason: why})
		}
	}
	sort.Strings(removed)
	detail := fmt.Sprintf("site %s: %s; task stream closed: %v, uploads stopped: %d", site, why, closed, stopped)
	switch {
	case stillValid:
		detail += "; the site holds another valid certificate and stays in its jobs"
	case len(removed) > 0:
		detail += "; removed from open jobs " + strings.Join(removed, ", ")
	}
	c.bus.emit(Event{Kind: EvSiteRevoked, Actor: "coordinator", Site: site, Detail: detail})
}
