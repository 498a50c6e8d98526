package siteagent

import (
	"crypto/x509"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/concord-fl/concord/pki"
	"github.com/concord-fl/concord/privacy/audit"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// The site witnesses the coordinator's audit log (privacy/audit). It has
// its own Ed25519 witness key, made on first start and kept in the agent's
// state. The first Welcome names the log's origin and key; the agent pins
// them, having learnt them over its mutual TLS connection, and from then on
// cosigns a checkpoint only if it is signed by that key and extends the
// last one it cosigned (a consistency proof). A truncated, rewritten or
// forked log, or a changed log key, gets no cosignature and an error in the
// agent's log for the site's IT: it means the coordinator's history
// changed.

var bAudit = []byte("audit")

var (
	kWitnessKey = []byte("witness-key")
	kLogKey     = []byte("log-key")
	kOrigin     = []byte("origin")
	kWitnessed  = []byte("witnessed")
)

// witnessKey loads the site's witness key, making it on first use.
func (s *state) witnessKey(name string) (*audit.Key, error) {
	var pemKey []byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bAudit)
		if err != nil {
			return err
		}
		if v := b.Get(kWitnessKey); v != nil {
			pemKey = append([]byte(nil), v...)
			return nil
		}
		k, err := audit.GenerateKey(nil, name)
		if err != nil {
			return err
		}
		if pemKey, err = k.MarshalPEM(); err != nil {
			return err
		}
		return b.Put(kWitnessKey, pemKey)
	})
	if err != nil {
		return nil, err
	}
	return audit.ParseKeyPEM(pemKey)
}

func (s *state) auditGet(k []byte) []byte {
	var out []byte
	_ = s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bAudit); b != nil {
			out = append([]byte(nil), b.Get(k)...)
		}
		return nil
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

func (s *state) auditPut(kv ...[]byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bAudit)
		if err != nil {
			return err
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if err := b.Put(kv[i], kv[i+1]); err != nil {
				return err
			}
		}
		return nil
	})
}

// siteName is the site's name in its certificate ("site" if unreadable):
// the witness key carries it, so cosignatures name the site.
func siteName(cfg Config) string {
	if cfg.TLS != nil && len(cfg.TLS.Certificates) > 0 && len(cfg.TLS.Certificates[0].Certificate) > 0 {
		if cert, err := x509.ParseCertificate(cfg.TLS.Certificates[0].Certificate[0]); err == nil {
			if id, err := pki.IdentityFromCertificate(cert); err == nil {
				return id.Name
			}
		}
	}
	return "site"
}

// witnessed is the size of the last checkpoint this site cosigned.
func (a *Agent) witnessed() uint64 {
	w, err := a.witness()
	if err != nil || w == nil {
		return 0
	}
	return w.Last().Size
}

// witness rebuilds the witness from the pinned log key and stored state;
// nil before the first Welcome that named a log.
func (a *Agent) witness() (*audit.Witness, error) {
	logKey, origin := a.st.auditGet(kLogKey), a.st.auditGet(kOrigin)
	if logKey == nil {
		return nil, nil
	}
	t, err := audit.NewTrust(string(origin), []string{string(logKey)}, nil, nil, 0)
	if err != nil {
		return nil, err
	}
	return audit.NewWitness(a.witnessKey, t, a.st.auditGet(kWitnessed))
}

// pinLogKey pins the log key from the site's kit; a state that pinned
// another key (a reissued coordinator kit) is a change the site's IT must
// see, so the agent refuses to start on it.
func (s *state) pinLogKey(logKey, origin string) error {
	if origin == "" {
		origin = "concord/audit"
	}
	if _, err := audit.NewTrust(origin, []string{logKey}, nil, nil, 0); err != nil {
		return fmt.Errorf("audit.log_key in the config: %w", err)
	}
	pinned := s.auditGet(kLogKey)
	switch {
	case pinned == nil:
		return s.auditPut(kLogKey, []byte(logKey), kOrigin, []byte(origin))
	case string(pinned) != logKey:
		return fmt.Errorf("audit.log_key in the config is not the coordinator key this site witnessed so far (%s): "+
			"if the consortium issued a new coordinator kit, confirm it with the consortium admin, then move the agent's state folder aside to start witnessing anew",
			bounded(string(pinned), 120))
	}
	return nil
}

// pinLog records the log's origin and key from the first Welcome that
// names them, and refuses a later change.
func (a *Agent) pinLog(w *pb.Welcome) error {
	if w.AuditLogKey == "" {
		return nil
	}
	logKey, origin := a.st.auditGet(kLogKey), a.st.auditGet(kOrigin)
	if logKey == nil {
		if _, err := audit.NewTrust(w.AuditOrigin, []string{w.AuditLogKey}, nil, nil, 0); err != nil {
			return fmt.Errorf("the coordinator's audit log key: %w", err)
		}
		return a.st.auditPut(kLogKey, []byte(w.AuditLogKey), kOrigin, []byte(w.AuditOrigin))
	}
	if string(logKey) != w.AuditLogKey || string(origin) != w.AuditOrigin {
		return errors.New("the coordinator presents another audit log key or origin than the one this site pinned: " +
			"its audit history can no longer be witnessed; the site will not cosign until the consortium explains the change")
	}
	return nil
}

// checkpoint witnesses a checkpoint: cosign it if it extends the last one.
func (a *Agent) checkpoint(cp *pb.AuditCheckpoint) ([]byte, error) {
	w, err := a.witness()
	if err != nil {
		return nil, err
	}
	if w == nil {
		return nil, errors.New("no audit log key pinned yet")
	}
	if w.Last().Size != cp.FromSize && w.Last().Size != 0 {
		return nil, fmt.Errorf("the proof starts at size %d, this site last cosigned size %d", cp.FromSize, w.Last().Size)
	}
	line, err := w.Update(cp.Signed, cp.Consistency)
	if err != nil {
		return nil, err
	}
	// Persist before the cosignature leaves.
	if err := a.st.auditPut(kWitnessed, w.State()); err != nil {
		return nil, err
	}
	return line, nil
}
