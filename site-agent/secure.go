package siteagent

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"

	bolt "go.etcd.io/bbolt"

	"github.com/concord-fl/concord/privacy/he"
	"github.com/concord-fl/concord/privacy/he/party"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// The site's side of secure aggregation. The secret key never leaves this
// process unencrypted: it is kept sealed (AES-GCM under the site's key
// passphrase) in the state database, or, with Config.Secrets, sealed under
// a seal key kept beside it in the secret store (secrets.go); it is opened
// for each task, and a new job always draws a new key (keys rotate with
// jobs).

func heJobOf(t *pb.Task) he.Job {
	return he.Job{ID: t.JobId, CRSSeed: t.CrpSeed, Sites: len(t.Points), Threshold: int(t.Threshold)}
}

func paramSetOf(t *pb.Task) (he.ParamSet, error) {
	name := t.Spec.GetPrivacy().GetHeParams()
	if name == "" {
		name = he.Default
	}
	return he.Lookup(name)
}

// passphrase returns the 32-byte key that seals this site's secret key
// material, stretched from the configured passphrase with PBKDF2-SHA256
// (600,000 iterations, OWASP 2023) and a random salt kept in the state
// database. It is derived once per process.
func (a *Agent) passphrase() ([]byte, error) {
	a.keyOnce.Do(func() {
		if a.cfg.Secrets != nil {
			a.sealKey, a.keyErr = a.storedSealKey()
			return
		}
		if len(a.cfg.KeyPassphrase) == 0 {
			a.keyErr = errors.New("no key passphrase configured: the site cannot store secret key material")
			return
		}
		var salt []byte
		salt, a.keyErr = a.st.salt()
		if a.keyErr != nil {
			return
		}
		a.sealKey, a.keyErr = pbkdf2.Key(sha256.New, string(a.cfg.KeyPassphrase), salt, 600_000, 32)
	})
	return a.sealKey, a.keyErr
}

func (a *Agent) saveParty(job string, p *party.Party) error {
	key, err := a.passphrase()
	if err != nil {
		return err
	}
	sealed, err := p.Seal(key)
	if err != nil {
		return err
	}
	if a.cfg.Secrets != nil {
		return a.secretPut(heSecretName(job), sealed)
	}
	return a.st.putKey(job, sealed)
}

func (a *Agent) loadParty(job string) (*party.Party, error) {
	key, err := a.passphrase()
	if err != nil {
		return nil, err
	}
	var sealed []byte
	if a.cfg.Secrets != nil {
		var ok bool
		if sealed, ok, err = a.secretLookup(heSecretName(job)); err == nil && !ok {
			err = fmt.Errorf("no key material for job %s in the secret store: %w", job, errNoKey)
		}
	} else {
		sealed, err = a.st.key(job)
	}
	if err != nil {
		return nil, err
	}
	return party.Open(sealed, key)
}

// keySetup draws this site's key for the job (once: a re-sent task reuses
// it) and publishes its exchange key.
func (a *Agent) keySetup(ctx context.Context, t *pb.Task) error {
	p, err := a.loadParty(t.JobId)
	if errors.Is(err, errNoKey) {
		ps, perr := paramSetOf(t)
		if perr != nil {
			return perr
		}
		if p, err = party.New(ps, heJobOf(t), int(t.Point), a.cfg.KeyRand); err != nil {
			return fmt.Errorf("key setup: %w", err)
		}
		if err = a.saveParty(t.JobId, p); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	return a.sendOnce(ctx, t, pb.UploadKind_UPLOAD_KIND_KEY_SHARE, nil, func() ([][]byte, error) {
		return [][]byte{p.ExchangePublicKey()}, nil
	})
}

// peers maps the job's Shamir points to the exchange keys.
func peers(t *pb.Task) (map[int][]byte, error) {
	out := map[int][]byte{}
	for site, pt := range t.Points {
		k, ok := t.ExchangeKeys[site]
		if !ok {
			return nil, fmt.Errorf("no exchange key for key holder %s", site)
		}
		out[int(pt)] = k
	}
	return out, nil
}

// keyShares deals this site's Shamir shares, each sealed to its receiver.
func (a *Agent) keyShares(ctx context.Context, t *pb.Task) error {
	p, err := a.loadParty(t.JobId)
	if err != nil {
		return err
	}
	pe, err := peers(t)
	if err != nil {
		return err
	}
	// Shares go to every other key holder; a site keeps its own.
	sites := make([]string, 0, len(t.Points))
	for s, pt := range t.Points {
		if pt != t.Point {
			sites = append(sites, s)
		}
	}
	sort.Strings(sites)
	return a.sendOnce(ctx, t, pb.UploadKind_UPLOAD_KIND_SHAMIR_SHARES, sites, func() ([][]byte, error) {
		sealed, err := p.ShamirSharesFor(pe)
		if err != nil {
			return nil, err
		}
		if err := a.saveParty(t.JobId, p); err != nil {
			return nil, err
		}
		chunks := make([][]byte, len(sites))
		for i, s := range sites {
			if chunks[i] = sealed[int(t.Points[s])]; chunks[i] == nil {
				return nil, fmt.Errorf("no share dealt for %s", s)
			}
		}
		return chunks, nil
	})
}

// sendOnce prepares an upload with make (unless it is already prepared
// for this task's nonce) and sends it.
func (a *Agent) sendOnce(ctx context.Context, t *pb.Task, kind pb.UploadKind, recipients []string, make func() ([][]byte, error)) error {
	key := submissionKey(t)
	sub, err := a.st.submission(key)
	if err != nil {
		return err
	}
	if sub == nil || string(sub.Nonce) != string(t.Nonce) {
		chunks, err := make()
		if err != nil {
			return err
		}
		if sub, err = a.st.writeChunks(key, chunks); err != nil {
			return err
		}
		sub.Nonce = t.Nonce
		if err := a.st.putSubmission(sub); err != nil {
			return err
		}
	}
	return a.upload(ctx, sub, &pb.UploadHeader{JobId: t.JobId, Round: t.Round, Kind: kind, Recipients: recipients})
}

// ensureShares opens the Shamir shares the other key holders sealed to this
// site, once per job.
func (a *Agent) ensureShares(ctx context.Context, t *pb.Task, p *party.Party) error {
	flag := t.JobId + "/shares-received"
	if _, err := a.st.key(flag); err == nil {
		return nil
	}
	relay, err := a.download(ctx, t.KeySharesBlob, maxBlobBytes)
	if err != nil {
		return err
	}
	sealed := map[int][]byte{}
	for len(relay) > 0 {
		if len(relay) < 6 {
			return errors.New("relayed key shares are malformed")
		}
		pt, n := int(binary.LittleEndian.Uint16(relay)), int(binary.LittleEndian.Uint32(relay[2:]))
		if len(relay) < 6+n {
			return errors.New("relayed key shares are truncated")
		}
		sealed[pt] = relay[6 : 6+n]
		relay = relay[6+n:]
	}
	pe, err := peers(t)
	if err != nil {
		return err
	}
	if err := p.ReceiveShamirShares(sealed, pe); err != nil {
		return fmt.Errorf("open relayed key shares: %w", err)
	}
	if err := a.saveParty(t.JobId, p); err != nil {
		return err
	}
	return a.st.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bKeys).Put([]byte(flag), []byte{1}) })
}

// encryptUpdate encrypts samples*delta and the sample count for the round.
// Values beyond the parameter set's headroom are clipped (and logged):
// the sum of every site's contribution must stay decryptable.
func (a *Agent) encryptUpdate(ctx context.Context, t *pb.Task, delta []float32, weight float64) ([][]byte, error) {
	p, err := a.loadParty(t.JobId)
	if err != nil {
		return nil, err
	}
	if err := a.ensureShares(ctx, t, p); err != nil {
		return nil, err
	}
	ps, err := paramSetOf(t)
	if err != nil {
		return nil, err
	}
	limit := ps.MaxAbsInput(len(t.Points))
	if weight > limit {
		return nil, fmt.Errorf("this site's %g examples exceed the parameter set's headroom %g: use a parameter set with more headroom", weight, limit)
	}
	bound := float32(limit / weight * 0.999)
	clipped := 0
	for i, v := range delta {
		if math.Abs(float64(v)) > float64(bound) {
			delta[i] = float32(math.Copysign(float64(bound), float64(v)))
			clipped++
		}
	}
	if clipped > 0 {
		a.log.Warn("update values clipped to the encryption headroom", "job", t.JobId, "round", t.Round, "values", clipped)
	}
	cts, err := p.Encrypt(uint64(t.Round), delta, weight)
	if err != nil {
		return nil, err
	}
	// The party remembers what it encrypted for the round (encrypting a
	// different update for the same round would leak the difference):
	// persist that before anything is uploaded.
	if err := a.saveParty(t.JobId, p); err != nil {
		return nil, err
	}
	return cts, nil
}

// decrypt sends this site's decryption shares for the request named in
// the task.
func (a *Agent) decrypt(ctx context.Context, t *pb.Task) error {
	p, err := a.loadParty(t.JobId)
	if err != nil {
		return err
	}
	if err := a.ensureShares(ctx, t, p); err != nil {
		return err
	}
	return a.sendOnce(ctx, t, pb.UploadKind_UPLOAD_KIND_DECRYPTION_SHARE, nil, func() ([][]byte, error) {
		raw, err := a.download(ctx, t.InputBlob, maxBlobBytes)
		if err != nil {
			return nil, err
		}
		req, err := he.UnmarshalDecryptionRequest(raw)
		if err != nil {
			return nil, err
		}
		shares, err := p.DecryptionShares(req)
		if err != nil {
			return nil, err
		}
		return shares, a.saveParty(t.JobId, p)
	})
}
