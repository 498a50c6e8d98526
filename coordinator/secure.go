package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/concord-fl/concord/coordinator/round"
	"github.com/concord-fl/concord/privacy/he"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// secureState is a secure-aggregation job's public material. The
// coordinator holds no key: it relays sealed Shamir shares it cannot read,
// adds ciphertexts, and combines the committee's decryption shares into the
// sum only (see package privacy/he).
type secureState struct {
	ParamSet string `json:"param_set"`
	CRSSeed  []byte `json:"crs_seed"`
	// Threshold as asked in the job; 0 means all key holders that train.
	Threshold int `json:"threshold"`
	// ValidateOnly are the key holders that never train (the validation
	// sites): they do not count in the default threshold.
	ValidateOnly []string       `json:"validate_only,omitempty"`
	Points       map[string]int `json:"points,omitempty"`
	// ExchangeKeys are the sites' X25519 public keys, for sealing Shamir
	// shares end to end.
	ExchangeKeys map[string][]byte `json:"exchange_keys,omitempty"`
	// Requests are the decryption requests sent, by "round.attempt".
	Requests map[string][]byte `json:"requests,omitempty"`
}

func newSecureState(spec *pb.JobSpec, params int, rnd io.Reader) (*secureState, error) {
	name := spec.GetPrivacy().GetHeParams()
	if name == "" {
		name = he.Default
	}
	ps, err := he.Lookup(name)
	if err != nil {
		return nil, err
	}
	if he.CiphertextsFor(ps, params) == 0 {
		return nil, fmt.Errorf("parameter set %s cannot carry %d values", name, params)
	}
	seed := make([]byte, 32)
	if _, err := io.ReadFull(rnd, seed); err != nil {
		return nil, err
	}
	return &secureState{ParamSet: name, CRSSeed: seed, Threshold: int(spec.GetPrivacy().GetThreshold()), ValidateOnly: slices.Clone(spec.ValidationSites),
		ExchangeKeys: map[string][]byte{}, Requests: map[string][]byte{}}, nil
}

// heJob is the public job description every party shares.
func (s *secureState) heJob(jobID string) he.Job {
	t := s.Threshold
	if t == 0 {
		for site := range s.Points {
			if !slices.Contains(s.ValidateOnly, site) {
				t++
			}
		}
	}
	return he.Job{ID: jobID, CRSSeed: s.CRSSeed, Sites: len(s.Points), Threshold: t}
}

func (s *secureState) paramSet() (he.ParamSet, error) { return he.Lookup(s.ParamSet) }

func relayBlob(jobID, site string) string { return fmt.Sprintf("he/%s/relay/%s", jobID, site) }
func aggBlob(jobID string, r int) string  { return fmt.Sprintf("he-agg/%s/%d", jobID, r) }
func requestBlob(jobID string, r, attempt int) string {
	return fmt.Sprintf("he/%s/request/%d.%d", jobID, r, attempt)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// blobReadableBy says which blobs a site may download: models, decryption
// requests, and the Shamir shares relayed to it (sealed to it in any case).
func blobReadableBy(name, site string) bool {
	switch {
	case strings.HasPrefix(name, "model/"):
		return len(strings.Split(name, "/")) == 3
	case strings.HasPrefix(name, "local/"):
		return len(strings.Split(name, "/")) == 3 // and Download asks localModelReadable
	case strings.HasPrefix(name, "he/"):
		parts := strings.Split(name, "/")
		if len(parts) == 4 && parts[2] == "request" {
			return true
		}
		if len(parts) == 4 && parts[2] == "relay" {
			return parts[3] == site
		}
	}
	return false
}

// secureTaskFields adds what a site needs for a secure task.
func (c *Coordinator) secureTaskFields(j *job, a round.Action, t *pb.Task) error {
	s := j.rec.Secure
	if s.Points == nil {
		s.Points = j.m.State().Points
	}
	if s.Requests == nil {
		s.Requests = map[string][]byte{}
	}
	if s.ExchangeKeys == nil {
		s.ExchangeKeys = map[string][]byte{}
	}
	hj := s.heJob(j.rec.ID)
	t.Point = uint32(s.Points[a.Site])
	t.Points = map[string]uint32{}
	for site, p := range s.Points {
		t.Points[site] = uint32(p)
	}
	t.CrpSeed, t.Threshold = s.CRSSeed, uint32(hj.Threshold)
	t.ExchangeKeys = s.ExchangeKeys
	switch a.Kind {
	case round.KindUpdate:
		t.KeySharesBlob = relayBlob(j.rec.ID, a.Site)
	case round.KindDecryption:
		key := fmt.Sprintf("%d.%d", a.Round, a.Attempt)
		if _, ok := s.Requests[key]; !ok {
			agg, err := c.loadAggregate(j, a.Round)
			if err != nil {
				return err
			}
			var avail []int
			for _, site := range a.Sites {
				avail = append(avail, s.Points[site])
			}
			req, err := agg.DecryptionRequest(avail)
			if err != nil {
				return err
			}
			data, err := req.MarshalBinary()
			if err != nil {
				return err
			}
			if err := c.st.db.Update(func(tx *bolt.Tx) error {
				_, err := putBlob(tx, requestBlob(j.rec.ID, a.Round, a.Attempt), data)
				return err
			}); err != nil {
				return err
			}
			s.Requests[key] = data
		}
		t.InputBlob = requestBlob(j.rec.ID, a.Round, a.Attempt)
		t.KeySharesBlob = relayBlob(j.rec.ID, a.Site)
	}
	return nil
}

// loadAggregate returns round r's encrypted running sum, empty if no
// update has been added yet.
func (c *Coordinator) loadAggregate(j *job, r int) (*he.Aggregate, error) {
	s := j.rec.Secure
	ps, err := s.paramSet()
	if err != nil {
		return nil, err
	}
	data, err := c.st.readBlob(aggBlob(j.rec.ID, r))
	if errors.Is(err, ErrNotFound) {
		return he.NewAggregate(ps, s.heJob(j.rec.ID), uint64(r), valuesOf(j, r))
	}
	if err != nil {
		return nil, err
	}
	return he.UnmarshalAggregate(ps, s.heJob(j.rec.ID), data)
}

func (c *Coordinator) checkSecureHeader(j *job, site string, kind round.Kind, h *pb.UploadHeader) error {
	s := j.rec.Secure
	switch kind {
	case round.KindKeyShare:
		if h.TotalChunks != 1 || h.TotalBytes != 32 {
			return errors.New("a key-setup upload is the site's 32-byte X25519 exchange key in one chunk")
		}
	case round.KindShamirShares:
		others := len(j.m.State().Members) - 1
		if int(h.TotalChunks) != len(h.Recipients) || len(h.Recipients) != others {
			return fmt.Errorf("sealed Shamir shares must be one chunk per other key holder (%d), naming each recipient", others)
		}
		seen := map[string]bool{}
		for _, r := range h.Recipients {
			if _, ok := j.m.State().Points[r]; !ok || seen[r] || r == site {
				return fmt.Errorf("recipient %q is not another key holder of this job, or repeated", r)
			}
			seen[r] = true
		}
	case round.KindUpdate:
		ps, err := s.paramSet()
		if err != nil {
			return err
		}
		if want := he.CiphertextsFor(ps, j.updateValues()); int(h.TotalChunks) != want {
			return fmt.Errorf("an encrypted update of %d values is %d ciphertexts (one per chunk), not %d", j.updateValues(), want, h.TotalChunks)
		}
	case round.KindDecryption:
		ps, err := s.paramSet()
		if err != nil {
			return err
		}
		if want := he.CiphertextsFor(ps, valuesOf(j, int(h.Round))); int(h.TotalChunks) != want {
			return fmt.Errorf("decryption shares are one per ciphertext (%d), not %d", want, h.TotalChunks)
		}
	}
	return nil
}

// decryption starts collecting the shares of round r's current request.
// Callers hold c.mu.
func (c *Coordinator) decryption(j *job, r int) (*he.Decryption, error) {
	return c.decryptionAt(j, r, j.m.State().Attempt)
}

// decryptionAt starts collecting the shares of round r's request attempt.
func (c *Coordinator) decryptionAt(j *job, r, attempt int) (*he.Decryption, error) {
	reqData := j.rec.Secure.Requests[fmt.Sprintf("%d.%d", r, attempt)]
	if reqData == nil {
		return nil, errors.New("no decryption request is open for this round")
	}
	req, err := he.UnmarshalDecryptionRequest(reqData)
	if err != nil {
		return nil, err
	}
	agg, err := c.loadAggregate(j, r)
	if err != nil {
		return nil, err
	}
	return agg.NewDecryption(req)
}

// secureOnComplete applies a completed secure upload inside the
// transaction that marks it complete.
func (c *Coordinator) secureOnComplete(tx *bolt.Tx, j *job, site string, kind round.Kind, name string, up *uploadRecord) error {
	s := j.rec.Secure
	chunks := func(fn func(i int, data []byte) error) error {
		info := up.TotalChunks
		for i := 0; i < info; i++ {
			d := tx.Bucket(bBlobs).Get(chunkKey(name, i))
			if d == nil {
				return fmt.Errorf("chunk %d missing", i)
			}
			if err := fn(i, d); err != nil {
				return err
			}
		}
		return nil
	}
	switch kind {
	case round.KindKeyShare:
		if s.ExchangeKeys == nil {
			s.ExchangeKeys = map[string][]byte{}
		}
		return chunks(func(_ int, d []byte) error {
			s.ExchangeKeys[site] = append([]byte(nil), d...)
			return nil
		})
	case round.KindUpdate:
		agg, err := c.loadAggregateTx(tx, j, up.Round)
		if err != nil {
			return err
		}
		point := s.Points[site]
		if err := chunks(func(i int, d []byte) error { return agg.Add(point, d) }); err != nil {
			return fmt.Errorf("encrypted update: %w", err)
		}
		data, err := agg.MarshalBinary()
		if err != nil {
			return err
		}
		_, err = putBlob(tx, aggBlob(j.rec.ID, up.Round), data)
		return err
	}
	return nil
}

func (c *Coordinator) loadAggregateTx(tx *bolt.Tx, j *job, r int) (*he.Aggregate, error) {
	s := j.rec.Secure
	ps, err := s.paramSet()
	if err != nil {
		return nil, err
	}
	var info blobInfo
	if err := getJSON(tx, bBlobMeta, aggBlob(j.rec.ID, r), &info); errors.Is(err, ErrNotFound) {
		return he.NewAggregate(ps, s.heJob(j.rec.ID), uint64(r), valuesOf(j, r))
	} else if err != nil {
		return nil, err
	}
	var data []byte
	for i := 0; i < info.Chunks; i++ {
		data = append(data, tx.Bucket(bBlobs).Get(chunkKey(aggBlob(j.rec.ID, r), i))...)
	}
	return he.UnmarshalAggregate(ps, s.heJob(j.rec.ID), data)
}

// startKeyCombine assembles, for every key holder, the Shamir shares the
// other holders sealed to it, then lets the job start training.
func (c *Coordinator) startKeyCombine(_ context.Context, j *job) {
	s := j.rec.Secure
	holders := make([]string, 0, len(s.Points))
	for site := range s.Points {
		holders = append(holders, site)
	}
	sort.Strings(holders)
	relay := map[string][]byte{}
	for _, dealer := range holders {
		name := uploadBlob(j.rec.ID, round.KindShamirShares, 0, dealer)
		up, err := c.uploadRecord(name)
		if err != nil {
			c.stepLocked(j, round.Event{Type: round.EvFailed, Now: c.now(), Reason: "key setup: " + err.Error()})
			return
		}
		err = c.st.eachChunk(name, 0, func(i int, data []byte) error {
			to := up.Recipients[i]
			relay[to] = appendRecord(relay[to], uint16(s.Points[dealer]), data)
			return nil
		})
		if err != nil {
			c.stepLocked(j, round.Event{Type: round.EvFailed, Now: c.now(), Reason: "key setup: " + err.Error()})
			return
		}
	}
	err := c.st.db.Update(func(tx *bolt.Tx) error {
		for _, site := range holders {
			if _, err := putBlob(tx, relayBlob(j.rec.ID, site), relay[site]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		c.log.Error("store relayed key shares", "job", j.rec.ID, "err", err)
		return
	}
	c.bus.emit(Event{Kind: EvKeyCombined, Actor: "coordinator", JobID: j.rec.ID,
		Detail: fmt.Sprintf("key setup complete: %d key holders, any %d can decrypt a sum; sealed shares relayed", len(holders), s.heJob(j.rec.ID).Threshold)})
	c.stepLocked(j, round.Event{Type: round.EvKeyCombined, Now: c.now()})
}

// appendRecord encodes one relayed share: dealer point, length, bytes.
func appendRecord(b []byte, point uint16, data []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, point)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// secureMean combines the committee's decryption shares with round r's
// encrypted sum and returns the weighted mean update and the total weight.
func (c *Coordinator) secureMean(_ context.Context, rec *jobRecord, r int, committee []string) ([]float32, float64, error) {
	c.mu.Lock()
	j := c.jobs[rec.ID]
	dec, err := c.decryption(j, r)
	points := rec.Secure.Points
	c.mu.Unlock()
	if err != nil {
		return nil, 0, err
	}
	for _, site := range committee {
		err := c.st.eachChunk(uploadBlob(rec.ID, round.KindDecryption, r, site), 0, func(_ int, data []byte) error {
			return dec.AddShare(points[site], data)
		})
		if err != nil {
			return nil, 0, fmt.Errorf("decryption share of %s: %w", site, err)
		}
	}
	res, err := dec.Result()
	if err != nil {
		return nil, 0, err
	}
	mean, err := res.Mean()
	if err != nil {
		return nil, 0, err
	}
	out := make([]float32, len(mean))
	for i, v := range mean {
		out[i] = float32(v)
	}
	return out, res.TotalWeight, nil
}

func cloneSecure(s *secureState) *secureState {
	if s == nil {
		return nil
	}
	c := *s
	c.ExchangeKeys = make(map[string][]byte, len(s.ExchangeKeys))
	for k, v := range s.ExchangeKeys {
		c.ExchangeKeys[k] = v
	}
	c.Requests = make(map[string][]byte, len(s.Requests))
	for k, v := range s.Requests {
		c.Requests[k] = v
	}
	return &c
}

// rebuildSecureSum recomputes round r's encrypted sum from the updates of
// the sites the machine still counts as delivered.
func (c *Coordinator) rebuildSecureSum(tx *bolt.Tx, j *job, r int) error {
	s := j.rec.Secure
	if err := deleteBlob(tx, aggBlob(j.rec.ID, r)); err != nil {
		return err
	}
	st := j.m.State()
	sites := make([]string, 0, len(st.Delivered))
	for site := range st.Delivered {
		sites = append(sites, site)
	}
	if len(sites) == 0 {
		return nil
	}
	sort.Strings(sites)
	agg, err := c.loadAggregateTx(tx, j, r)
	if err != nil {
		return err
	}
	for _, site := range sites {
		name := uploadBlob(j.rec.ID, round.KindUpdate, r, site)
		var info blobInfo
		if err := getJSON(tx, bBlobMeta, name, &info); err != nil {
			return fmt.Errorf("update of %s: %w", site, err)
		}
		for i := 0; i < info.Chunks; i++ {
			d := tx.Bucket(bBlobs).Get(chunkKey(name, i))
			if d == nil {
				return fmt.Errorf("update of %s: chunk %d missing", site, i)
			}
			if err := agg.Add(s.Points[site], d); err != nil {
				return fmt.Errorf("update of %s: %w", site, err)
			}
		}
	}
	data, err := agg.MarshalBinary()
	if err != nil {
		return err
	}
	_, err = putBlob(tx, aggBlob(j.rec.ID, r), data)
	return err
}
