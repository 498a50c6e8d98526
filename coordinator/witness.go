package coordinator

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/concord-fl/concord/privacy/audit"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// The sites witness the audit log. Every CheckpointInterval, when the log
// grew, the coordinator signs a checkpoint, stores it as the latest, and
// sends it to each connected site with a consistency proof from the size
// that site last witnessed. A site checks the proof against the checkpoint
// it accepted before and returns its cosignature, which is added to the
// stored checkpoint. A site that was shown a truncated or rewritten log
// refuses, so once sites witness, the coordinator's operator cannot rewrite
// history alone. The site pins the log key from its kit (pki issue), or
// else from its first Welcome, over its mutual TLS connection.

// auditKey loads the coordinator's audit key, creating it on first start.
func auditKey(path string) (*audit.Key, error) {
	k, err := audit.ReadKeyFile(path)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("audit key %s: %w", path, err)
	}
	k, err = audit.GenerateKey(nil, "coordinator")
	if err != nil {
		return nil, err
	}
	if err := audit.WriteKeyFile(path, k); err != nil {
		return nil, fmt.Errorf("write audit key %s: %w", path, err)
	}
	return k, nil
}

// checkpoint signs and stores a checkpoint of the current log when it grew
// since the last one, and returns the latest with its size.
func (b *bus) checkpoint() ([]byte, uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	size := b.alog.Size()
	if latest, err := b.alog.Latest(); err != nil {
		return nil, 0, err
	} else if latest != nil && b.signedSize == size {
		return latest, size, nil
	}
	signed, err := b.alog.SignCheckpoint(b.key)
	if err != nil {
		return nil, 0, err
	}
	if err := b.alog.Publish(signed); err != nil {
		return nil, 0, err
	}
	b.signedSize = size
	return signed, size, nil
}

// proof is the consistency proof from the tree of size from to size to.
func (b *bus) proof(from, to uint64) ([][]byte, error) {
	if from == 0 || from >= to {
		return nil, nil
	}
	return b.alog.ConsistencyProof(from, to)
}

// cosign checks that line is witnessKey's cosignature of the checkpoint
// offered (the site accepted that size), and adds it to the stored latest
// checkpoint when that is still the one offered. It returns the size the
// site now witnesses.
func (b *bus) cosign(offered, line []byte, witnessKey string) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := audit.NewTrust(b.alog.Origin(), []string{b.key.Verifier()}, nil, []string{witnessKey}, 1)
	if err != nil {
		return 0, err
	}
	merged, err := audit.AddCosignatures(offered, line)
	if err != nil {
		return 0, err
	}
	cp, cosigners, err := audit.OpenCheckpoint(merged, t)
	if err != nil {
		return 0, err
	}
	if len(cosigners) != 1 {
		return 0, errors.New("the cosignature is not by the site's witness key")
	}
	latest, err := b.alog.Latest()
	if err != nil || latest == nil {
		return cp.Size, err
	}
	if lc, _, err := audit.OpenCheckpoint(latest, t); err != nil || lc.Size != cp.Size || !bytes.Equal(lc.Root, cp.Root) {
		return cp.Size, nil // a newer checkpoint is out: the site will cosign that one
	}
	withSite, err := audit.AddCosignatures(latest, line)
	if err != nil {
		return cp.Size, err
	}
	return cp.Size, b.alog.Publish(withSite)
}

// offerTimeout is how long a checkpoint offer waits for its cosignature
// before a newer one is offered in its place.
const offerTimeout = 30 * time.Second

// publishCheckpoint signs a checkpoint if the log grew and sends it to
// every connected witness that has not seen it.
func (c *Coordinator) publishCheckpoint() {
	signed, size, err := c.bus.checkpoint()
	if err != nil {
		c.log.Error("sign audit checkpoint", "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sessions {
		// One offer at a time: a site that is offered a newer checkpoint
		// while its cosignature of the previous one is on its way would
		// refuse the new proof (it starts below what the site now
		// witnesses). An offer unanswered for offerTimeout is renewed.
		outstanding := s.offered > s.witnessed && time.Since(s.offeredAt) < offerTimeout
		if s.witnessKey == "" || s.witnessed >= size || s.offered >= size || outstanding {
			continue
		}
		proof, err := c.bus.proof(s.witnessed, size)
		if err != nil {
			c.log.Error("audit consistency proof", "site", s.site, "from", s.witnessed, "to", size, "err", err)
			continue
		}
		s.offered, s.offeredSigned, s.offeredAt = size, signed, time.Now()
		s.send(&pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Checkpoint{Checkpoint: &pb.AuditCheckpoint{
			Signed: signed, FromSize: s.witnessed, Consistency: proof}}})
	}
}

// cosigned takes a site's cosignature of the checkpoint it was offered.
func (c *Coordinator) cosigned(s *session, line []byte) {
	c.mu.Lock()
	key, offered := s.witnessKey, s.offeredSigned
	c.mu.Unlock()
	if key == "" || offered == nil {
		return
	}
	size, err := c.bus.cosign(offered, line, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		// Not a cosignature of what was offered: offer again from what
		// the site last witnessed.
		c.log.Warn("audit cosignature refused", "site", s.site, "err", err)
		s.offered = s.witnessed
		return
	}
	s.witnessed = size
}
