package pki

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Role is what a certificate holder may do in the consortium.
type Role string

// The roles. A coordinator certificate is a TLS server certificate; the
// others are client certificates.
const (
	RoleSite    Role = "site"
	RoleAdmin   Role = "admin"
	RoleAuditor Role = "auditor"
	// RoleObserver sees sites, jobs and models, and nothing else: no
	// events, no exports, no model weights, no job control.
	RoleObserver    Role = "observer"
	RoleCoordinator Role = "coordinator"
)

// Roles lists every role, in a stable order.
var Roles = []Role{RoleSite, RoleAdmin, RoleAuditor, RoleObserver, RoleCoordinator}

// ErrInvalidIdentity means a role, name or identity URI is malformed.
var ErrInvalidIdentity = errors.New("invalid identity")

// ParseRole checks that s names a role.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("role %q: use one of site, admin, auditor, coordinator: %w", s, ErrInvalidIdentity)
	}
	return r, nil
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool {
	switch r {
	case RoleSite, RoleAdmin, RoleAuditor, RoleObserver, RoleCoordinator:
		return true
	}
	return false
}

// ValidateName checks that name is a DNS label: 1 to 63 of a-z, 0-9 and
// '-', not starting or ending with '-'. Names appear in URIs, file names and
// log lines, so nothing else is allowed.
func ValidateName(name string) error {
	ok := len(name) >= 1 && len(name) <= 63 && name[0] != '-' && name[len(name)-1] != '-'
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
	}
	if !ok {
		return fmt.Errorf("name %q: use 1 to 63 lower-case letters, digits and '-', not starting or ending with '-' (e.g. st-marys): %w", name, ErrInvalidIdentity)
	}
	return nil
}

// Identity is a verified certificate holder.
type Identity struct {
	Role Role
	Name string
	// Serial is the certificate's serial number in lower-case hex, the key
	// of the inventory.
	Serial string
}

func (id Identity) String() string { return string(id.Role) + "/" + id.Name }

// URI returns the identity's SAN URI, concord://<role>/<name>.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: "concord", Host: string(id.Role), Path: "/" + id.Name}
}

// ParseIdentityURI parses concord://<role>/<name>. Serial is left empty.
func ParseIdentityURI(s string) (Identity, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Identity{}, fmt.Errorf("identity URI %q: %w", s, errors.Join(err, ErrInvalidIdentity))
	}
	if u.Scheme != "concord" || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		u.Port() != "" || !strings.HasPrefix(u.Path, "/") || u.RawPath != "" {
		return Identity{}, fmt.Errorf("identity URI %q is not of the form concord://<role>/<name>: %w", s, ErrInvalidIdentity)
	}
	role, err := ParseRole(u.Host)
	if err != nil {
		return Identity{}, err
	}
	name := u.Path[1:]
	if err := ValidateName(name); err != nil {
		return Identity{}, err
	}
	return Identity{Role: role, Name: name}, nil
}

// IdentityFromCertificate reads the identity of a certificate: exactly one
// concord:// URI SAN, and the serial number. It does not verify the
// certificate; TLS does that.
func IdentityFromCertificate(cert *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range cert.URIs {
		if u.Scheme != "concord" {
			continue
		}
		id, err := ParseIdentityURI(u.String())
		if err != nil {
			return Identity{}, err
		}
		found = append(found, id)
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("certificate has no concord:// URI SAN; it was not issued by concordctl pki: %w", ErrInvalidIdentity)
	case 1:
	default:
		return Identity{}, fmt.Errorf("certificate has %d concord:// URI SANs, want exactly one: %w", len(found), ErrInvalidIdentity)
	}
	id := found[0]
	id.Serial = SerialString(cert.SerialNumber)
	return id, nil
}

// SerialString formats a certificate serial number as the inventory does:
// lower-case hex without leading zeros.
func SerialString(n *big.Int) string {
	if n == nil {
		return ""
	}
	return n.Text(16)
}

type identityKey struct{}

// ContextWithIdentity returns ctx carrying id. The Authorizer's interceptors
// call it; handlers' tests may too.
func ContextWithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFromContext returns the caller's identity that the Authorizer put
// in a handler's context, and false when there is none.
func IdentityFromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// IdentityFromCertFile reads the identity of the first certificate in a PEM
// file, such as a kit's cert.pem. Like IdentityFromCertificate, it does not
// verify the certificate.
func IdentityFromCertFile(path string) (Identity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Identity{}, fmt.Errorf("read certificate: %w", err)
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return Identity{}, fmt.Errorf("%s holds no PEM certificate", filepath.Base(path))
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return Identity{}, fmt.Errorf("parse certificate: %w", err)
		}
		return IdentityFromCertificate(cert)
	}
}
