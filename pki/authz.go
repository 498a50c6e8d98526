package pki

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Policy maps a full gRPC method name ("/concord.v1.Admin/SubmitJob") or a
// service prefix ending in "/" ("/concord.v1.Agent/") to the roles allowed
// to call it. An exact method entry wins over a prefix; among prefixes the
// longest wins. A method matched by no entry is denied to everyone.
type Policy map[string][]Role

// Validate checks that every key is a method or service prefix and every
// role is known.
func (p Policy) Validate() error {
	for k, roles := range p {
		if !strings.HasPrefix(k, "/") || strings.Count(k, "/") != 2 {
			return fmt.Errorf("policy key %q: want /package.Service/Method or /package.Service/", k)
		}
		for _, r := range roles {
			if !r.Valid() {
				return fmt.Errorf("policy key %q: role %q: %w", k, r, ErrInvalidIdentity)
			}
		}
	}
	return nil
}

// allowed returns the roles for method and whether any entry matched.
func (p Policy) allowed(method string) ([]Role, bool) {
	if roles, ok := p[method]; ok {
		return roles, true
	}
	best := ""
	for k := range p {
		if strings.HasSuffix(k, "/") && strings.HasPrefix(method, k) && len(k) > len(best) {
			best = k
		}
	}
	if best == "" {
		return nil, false
	}
	return p[best], true
}

// Authorizer authenticates every gRPC call by its verified client
// certificate, checks it against the inventory and the policy, and puts the
// caller's Identity in the handler's context.
type Authorizer struct {
	inv    InventorySource
	policy Policy
	log    *slog.Logger
	now    func() time.Time
}

// NewAuthorizer returns an Authorizer over inv and a copy of p. Call
// p.Validate first: an invalid key never matches, so it only denies.
// Denials are logged at level Warn (slog.Default unless WithLogger), with
// the method, role, name, serial and reason: never request contents.
func NewAuthorizer(inv InventorySource, p Policy) *Authorizer {
	cp := make(Policy, len(p))
	for k, v := range p {
		cp[k] = slices.Clone(v)
	}
	return &Authorizer{inv: inv, policy: cp, log: slog.Default(), now: time.Now}
}

// WithLogger makes the Authorizer log denials to l instead of
// slog.Default, and returns it. Call it before serving.
func (a *Authorizer) WithLogger(l *slog.Logger) *Authorizer {
	if l != nil {
		a.log = l
	}
	return a
}

// Authorize decides one call. The error is a gRPC status error:
// Unauthenticated without a verified concord certificate, PermissionDenied
// for an unknown or revoked certificate or a role the policy does not
// allow, Unavailable if the inventory cannot be read.
func (a *Authorizer) Authorize(ctx context.Context, method string) (Identity, error) {
	id, err := a.authorize(ctx, method)
	if err != nil {
		a.log.Warn("call refused", "method", method, "role", id.Role, "name", id.Name, "serial", id.Serial,
			"code", status.Code(err).String(), "reason", status.Convert(err).Message())
	}
	return id, err
}

func (a *Authorizer) authorize(ctx context.Context, method string) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, status.Error(codes.Unauthenticated, "no peer information: the connection is not authenticated")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Identity{}, status.Error(codes.Unauthenticated, "the connection is not TLS: use the kit's certificate")
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return Identity{}, status.Error(codes.Unauthenticated, "no verified client certificate: use the kit's certificate")
	}
	leaf := chains[0][0]
	id, err := IdentityFromCertificate(leaf)
	if err != nil {
		return Identity{}, status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
	}
	if a.now().After(leaf.NotAfter) {
		return id, status.Errorf(codes.Unauthenticated, "certificate of %s expired on %s: ask the consortium admin for a new kit", id, leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	entry, err := a.inv.Lookup(id.Serial)
	switch {
	case errors.Is(err, ErrNotFound):
		return id, status.Errorf(codes.PermissionDenied, "certificate %s of %s is not in the consortium inventory", id.Serial, id)
	case err != nil:
		return id, status.Error(codes.Unavailable, "the coordinator cannot read its certificate inventory; try again later")
	}
	if entry.Role != id.Role || entry.Name != id.Name {
		return id, status.Errorf(codes.PermissionDenied, "certificate %s names %s but the inventory records %s/%s", id.Serial, id, entry.Role, entry.Name)
	}
	if entry.Revoked {
		when := ""
		if entry.RevokedAt != nil {
			when = " on " + entry.RevokedAt.UTC().Format(time.RFC3339)
		}
		return id, status.Errorf(codes.PermissionDenied, "certificate %s of %s was revoked%s", id.Serial, id, when)
	}
	roles, ok := a.policy.allowed(method)
	if !ok {
		return id, status.Errorf(codes.PermissionDenied, "method %s is not open to any role", method)
	}
	if !slices.Contains(roles, id.Role) {
		return id, status.Errorf(codes.PermissionDenied, "role %s may not call %s", id.Role, method)
	}
	return id, nil
}

// UnaryInterceptor authorises unary calls.
func (a *Authorizer) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		id, err := a.Authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ContextWithIdentity(ctx, id), req)
	}
}

// StreamInterceptor authorises streaming calls.
func (a *Authorizer) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		id, err := a.Authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: ContextWithIdentity(ss.Context(), id)})
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }
