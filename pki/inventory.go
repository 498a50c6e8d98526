package pki

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Sentinel errors of the inventory.
var (
	// ErrNotFound means no certificate matches: an unknown serial, or no
	// active certificate for a role and name.
	ErrNotFound = errors.New("certificate not found")
	// ErrInventory means the inventory file cannot be read or parsed.
	ErrInventory = errors.New("inventory unavailable")
)

const inventoryVersion = 1

// Entry records one issued certificate.
type Entry struct {
	Serial    string     `json:"serial"`
	Role      Role       `json:"role"`
	Name      string     `json:"name"`
	Hosts     []string   `json:"hosts,omitempty"`
	NotBefore time.Time  `json:"not_before"`
	NotAfter  time.Time  `json:"not_after"`
	Revoked   bool       `json:"revoked"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Status is "revoked", "expired" or "active" at time now.
func (e Entry) Status(now time.Time) string {
	switch {
	case e.Revoked:
		return "revoked"
	case now.After(e.NotAfter):
		return "expired"
	}
	return "active"
}

// Inventory is every certificate the CA has issued, in issue order.
type Inventory struct {
	Version      int     `json:"version"`
	Certificates []Entry `json:"certificates"`

	bySerial map[string]int
}

// InventorySource answers whether a certificate serial belongs to the
// consortium. *Inventory and *InventoryWatcher implement it. Lookup returns
// an error wrapping ErrNotFound for an unknown serial; any other error means
// the source itself is unavailable, and the Authorizer then refuses the call.
type InventorySource interface {
	Lookup(serial string) (Entry, error)
}

// LoadInventory reads and validates an inventory file.
func LoadInventory(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", errors.Join(err, ErrInventory))
	}
	inv, err := ParseInventory(data)
	if err != nil {
		return nil, fmt.Errorf("inventory %s: %w", path, err)
	}
	return inv, nil
}

// ParseInventory decodes and validates inventory JSON: known version,
// valid roles and names, unique serials.
func ParseInventory(data []byte) (*Inventory, error) {
	var inv Inventory
	if err := json.Unmarshal(data, &inv); err != nil {
		return nil, fmt.Errorf("parse: %w", errors.Join(err, ErrInventory))
	}
	if inv.Version != inventoryVersion {
		return nil, fmt.Errorf("version %d, this program reads version %d: %w", inv.Version, inventoryVersion, ErrInventory)
	}
	inv.bySerial = make(map[string]int, len(inv.Certificates))
	for i, e := range inv.Certificates {
		if e.Serial == "" {
			return nil, fmt.Errorf("entry %d has no serial: %w", i, ErrInventory)
		}
		if _, dup := inv.bySerial[e.Serial]; dup {
			return nil, fmt.Errorf("serial %s appears twice: %w", e.Serial, ErrInventory)
		}
		if !e.Role.Valid() {
			return nil, fmt.Errorf("entry %s has role %q: %w", e.Serial, e.Role, ErrInventory)
		}
		if err := ValidateName(e.Name); err != nil {
			return nil, fmt.Errorf("entry %s: %w", e.Serial, errors.Join(err, ErrInventory))
		}
		inv.bySerial[e.Serial] = i
	}
	return &inv, nil
}

// Lookup returns the entry of a serial, or an error wrapping ErrNotFound.
func (inv *Inventory) Lookup(serial string) (Entry, error) {
	i, ok := inv.bySerial[serial]
	if !ok {
		return Entry{}, fmt.Errorf("serial %s: %w", serial, ErrNotFound)
	}
	return inv.Certificates[i], nil
}

// Active returns the certificates of role and name that are neither revoked
// nor expired at now.
func (inv *Inventory) Active(role Role, name string, now time.Time) []Entry {
	var out []Entry
	for _, e := range inv.Certificates {
		if e.Role == role && e.Name == name && e.Status(now) == "active" {
			out = append(out, e)
		}
	}
	return out
}

func (inv *Inventory) add(e Entry) {
	if inv.bySerial == nil {
		inv.bySerial = map[string]int{}
	}
	inv.bySerial[e.Serial] = len(inv.Certificates)
	inv.Certificates = append(inv.Certificates, e)
}

// save writes the inventory atomically: a temporary file in the same
// folder, fsync, rename over the old one, fsync the folder. A reader (the
// coordinator's watcher) sees the old or the new inventory, never half.
func (inv *Inventory) save(path string) error {
	out := *inv
	out.Version = inventoryVersion
	if out.Certificates == nil {
		out.Certificates = []Entry{}
	}
	data, err := json.MarshalIndent(&out, "", "  ")
	if err != nil {
		return fmt.Errorf("encode inventory: %w", err)
	}
	return writeFileAtomic(path, append(data, '\n'), 0o644)
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync() // best effort: some filesystems refuse to sync a folder
		d.Close()
	}
	return nil
}

// InventoryWatcher is an InventorySource that re-reads the inventory file
// whenever it changes (another inode, size or modification time), checked
// with one stat per Lookup, so a revocation written by `concordctl pki
// revoke` takes effect on the next call without a restart.
//
// It fails closed: while the file is missing or invalid, Lookup returns an
// error wrapping ErrInventory and the Authorizer refuses every call. It is
// safe for concurrent use.
type InventoryWatcher struct {
	path string
	log  *slog.Logger

	mu     sync.Mutex
	inv    *Inventory
	info   os.FileInfo
	broken error
}

// WatchInventory loads path and returns a watcher of it. It fails if the
// inventory cannot be loaded now, so that a coordinator does not start with
// an unusable one.
func WatchInventory(path string, log *slog.Logger) (*InventoryWatcher, error) {
	if log == nil {
		log = slog.Default()
	}
	w := &InventoryWatcher{path: path, log: log}
	if err := w.reload(); err != nil {
		return nil, err
	}
	return w, nil
}

// Lookup re-reads the inventory if the file changed, then looks serial up.
func (w *InventoryWatcher) Lookup(serial string) (Entry, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.refreshLocked(); err != nil {
		return Entry{}, err
	}
	return w.inv.Lookup(serial)
}

// Inventory returns the inventory as last loaded (refreshing first).
func (w *InventoryWatcher) Inventory() (*Inventory, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.refreshLocked(); err != nil {
		return nil, err
	}
	return w.inv, nil
}

func (w *InventoryWatcher) reload() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.refreshLocked()
}

func (w *InventoryWatcher) refreshLocked() error {
	info, err := os.Stat(w.path)
	if err != nil {
		return w.failLocked(fmt.Errorf("stat inventory: %w", errors.Join(err, ErrInventory)))
	}
	if w.broken == nil && w.info != nil && os.SameFile(info, w.info) &&
		info.Size() == w.info.Size() && info.ModTime().Equal(w.info.ModTime()) {
		return nil
	}
	inv, err := LoadInventory(w.path)
	if err != nil {
		return w.failLocked(err)
	}
	if w.broken != nil || w.info != nil {
		w.log.Info("inventory reloaded", "path", w.path, "certificates", len(inv.Certificates))
	}
	w.inv, w.info, w.broken = inv, info, nil
	return nil
}

func (w *InventoryWatcher) failLocked(err error) error {
	if w.broken == nil {
		w.log.Error("inventory unusable; refusing every call until it is fixed", "path", w.path, "err", err)
	}
	w.broken = err
	return err
}

// revokeAll marks every unrevoked certificate of role and name revoked at
// now and returns how many it marked.
func (inv *Inventory) revokeAll(role Role, name string, now time.Time) int {
	n := 0
	for i := range inv.Certificates {
		e := &inv.Certificates[i]
		if e.Role == role && e.Name == name && !e.Revoked {
			t := now.UTC()
			e.Revoked, e.RevokedAt = true, &t
			n++
		}
	}
	return n
}

// SortedForDisplay returns the entries by role, name, then issue time.
func (inv *Inventory) SortedForDisplay() []Entry {
	out := slices.Clone(inv.Certificates)
	slices.SortStableFunc(out, func(a, b Entry) int {
		if a.Role != b.Role {
			return slices.Index(Roles, a.Role) - slices.Index(Roles, b.Role)
		}
		if a.Name != b.Name {
			if a.Name < b.Name {
				return -1
			}
			return 1
		}
		return a.NotBefore.Compare(b.NotBefore)
	})
	return out
}

// ErrNoCoordinator means no active coordinator certificate has been issued
// yet, so a kit's coordinator address cannot be derived.
var ErrNoCoordinator = errors.New("no coordinator certificate issued yet: pass --coordinator-addr HOST:PORT, or issue the coordinator's kit first")

// DefaultCoordinatorAddr is the first host of the newest active coordinator
// certificate in caDir's inventory, at DefaultPort.
func DefaultCoordinatorAddr(caDir string) (string, error) {
	inv, err := LoadInventory(filepath.Join(caDir, InventoryFile))
	if err != nil {
		return "", err
	}
	now := time.Now()
	for i := len(inv.Certificates) - 1; i >= 0; i-- {
		e := inv.Certificates[i]
		if e.Role == RoleCoordinator && e.Status(now) == "active" && len(e.Hosts) > 0 {
			return net.JoinHostPort(e.Hosts[0], strconv.Itoa(DefaultPort)), nil
		}
	}
	return "", ErrNoCoordinator
}
