package jpeg2000

import (
	"fmt"
	"sort"
)

// bitReader reads packet-header bits (B.10.1): after an 0xFF byte the next byte
// carries only seven bits.
type bitReader struct {
	b   []byte
	pos int
	buf int
	ct  int
}

func (r *bitReader) bit() (int, error) {
	if r.ct == 0 {
		r.buf = (r.buf << 8) & 0xFFFF
		if r.buf == 0xFF00 {
			r.ct = 7
		} else {
			r.ct = 8
		}
		if r.pos >= len(r.b) {
			return 0, fmt.Errorf("%w: packet header runs past the data", ErrTruncated)
		}
		r.buf |= int(r.b[r.pos])
		r.pos++
	}
	r.ct--
	return (r.buf >> uint(r.ct)) & 1, nil
}

func (r *bitReader) bits(n int) (int, error) {
	v := 0
	for i := 0; i < n; i++ {
		b, err := r.bit()
		if err != nil {
			return 0, err
		}
		v = v<<1 | b
	}
	return v, nil
}

// align ends a packet header: a header ending on 0xFF is followed by a stuffed byte.
func (r *bitReader) align() {
	if r.buf&0xFF == 0xFF {
		r.pos++
	}
	r.ct = 0
	r.buf = 0
}

// packet identifies one packet of a tile.
type packet struct {
	l, r, c, p int
}

// packetOrder lists the packets of a tile in the order they appear (B.12), with
// progression order changes applied.
// Every packet costs at least one header bit, so a tile cannot hold more than limit.
func (t *tileState) packetOrder(limit int) ([]packet, error) {
	cs0 := t.comps[0].cs
	layers := cs0.layers
	maxRes := 0
	total := 0
	for _, tc := range t.comps {
		maxRes = max(maxRes, len(tc.res))
		for _, r := range tc.res {
			total += r.pw * r.ph
		}
	}
	if n := int64(total) * int64(layers); n > int64(limit) {
		return nil, fmt.Errorf("%w: tile %d declares %d packets, its headers hold at most %d", ErrTruncated, t.index, n, limit)
	}
	if n := int64(total) * int64(layers); n > maxPackets {
		return nil, unsupported("%d packets in one tile (at most %d)", n, maxPackets)
	}
	pocs := t.hdr.pocs
	if len(pocs) == 0 {
		pocs = t.mainPocs
	}
	if len(pocs) == 0 {
		pocs = []poc{{rs: 0, cs: 0, lye: layers, re: maxRes, ce: len(t.comps), prog: cs0.prog}}
	}
	done := map[[3]int]int{}
	var out []packet
	for _, pc := range pocs {
		var seg []packet
		var keys [][5]int
		ce := min(pc.ce, len(t.comps))
		lye := min(pc.lye, layers)
		for c := pc.cs; c < ce; c++ {
			tc := t.comps[c]
			re := min(pc.re, len(tc.res))
			for r := pc.rs; r < re; r++ {
				res := &tc.res[r]
				nl := len(tc.res) - 1
				dx, dy := t.s.comps[c].dx<<uint(nl-r), t.s.comps[c].dy<<uint(nl-r)
				for p := 0; p < res.pw*res.ph; p++ {
					// Where the position-driven progressions first reach this precinct.
					px, py := res.px0+p%res.pw, res.py0+p/res.pw
					x := max((px<<uint(res.ppx))*dx, t.x0)
					y := max((py<<uint(res.ppy))*dy, t.y0)
					first := done[[3]int{c, r, p}]
					for l := first; l < lye; l++ {
						seg = append(seg, packet{l, r, c, p})
						var k [5]int
						switch pc.prog {
						case 0: // LRCP
							k = [5]int{l, r, c, p, 0}
						case 1: // RLCP
							k = [5]int{r, l, c, p, 0}
						case 2: // RPCL
							k = [5]int{r, y, x, c, l}
						case 3: // PCRL
							k = [5]int{y, x, c, r, l}
						case 4: // CPRL
							k = [5]int{c, y, x, r, l}
						}
						keys = append(keys, k)
					}
					if lye > first {
						done[[3]int{c, r, p}] = lye
					}
				}
			}
		}
		idx := make([]int, len(seg))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool {
			ka, kb := keys[idx[a]], keys[idx[b]]
			for i := range ka {
				if ka[i] != kb[i] {
					return ka[i] < kb[i]
				}
			}
			return false
		})
		for _, i := range idx {
			out = append(out, seg[i])
		}
	}
	return out, nil
}

// readPackets parses every packet of the tile, filling code-block segments.
func (t *tileState) readPackets() error {
	body := t.data
	hdr := body
	packed := t.packed != nil
	if packed {
		hdr = t.packed
	}
	order, err := t.packetOrder(8*len(hdr) + 8)
	if err != nil {
		return err
	}
	bpos, hpos := 0, 0
	for _, pk := range order {
		if bpos >= len(body) && !packed {
			return fmt.Errorf("%w: tile %d ends before packet (layer %d, resolution %d, component %d, precinct %d)",
				ErrTruncated, t.index, pk.l, pk.r, pk.c, pk.p)
		}
		tc := t.comps[pk.c]
		cs := tc.cs
		if cs.sop && bpos+6 <= len(body) && u16(body[bpos:]) == mSOP {
			bpos += 6
		}
		if !packed {
			hpos = bpos
		}
		br := &bitReader{b: hdr, pos: hpos}
		pbs := tc.precinct(pk.r, pk.p)
		lens, err := readPacketHeader(br, pbs, pk.l, cs.cbStyle)
		if err != nil {
			return fmt.Errorf("tile %d packet (layer %d, resolution %d, component %d): %w", t.index, pk.l, pk.r, pk.c, err)
		}
		br.align()
		hpos = br.pos
		if cs.eph && hpos+2 <= len(hdr) && u16(hdr[hpos:]) == mEPH {
			hpos += 2
		}
		if !packed {
			bpos = hpos
		}
		for _, l := range lens {
			if bpos+l.n > len(body) {
				return fmt.Errorf("%w: code-block data of %d bytes runs past tile %d", ErrTruncated, l.n, t.index)
			}
			l.cb.data = append(l.cb.data, body[bpos:bpos+l.n]...)
			bpos += l.n
		}
	}
	return nil
}

type blockLen struct {
	cb *codeBlock
	n  int
}

// readPacketHeader decodes one packet header (B.10), returning how many body bytes
// belong to each code-block, in body order.
func readPacketHeader(br *bitReader, pbs []precinctBand, layer int, style byte) ([]blockLen, error) {
	present, err := br.bit()
	if err != nil || present == 0 {
		return nil, err
	}
	var out []blockLen
	for bi := range pbs {
		pb := &pbs[bi]
		for i := range pb.blocks {
			cb := &pb.blocks[i]
			var in bool
			if !cb.included {
				in, err = pb.incl.decode(br, i, layer+1)
			} else {
				var b int
				b, err = br.bit()
				in = b == 1
			}
			if err != nil {
				return nil, err
			}
			if !in {
				continue
			}
			if !cb.included {
				z := 1
				for {
					ok, err := pb.zbp.decode(br, i, z)
					if err != nil {
						return nil, err
					}
					if ok {
						break
					}
					if z++; z > 74 {
						return nil, malformed("zero bit-planes beyond 74")
					}
				}
				cb.zbp = z - 1
				cb.included = true
			}
			n, err := readPassCount(br)
			if err != nil {
				return nil, err
			}
			for {
				b, err := br.bit()
				if err != nil {
					return nil, err
				}
				if b == 0 {
					break
				}
				if cb.lblock++; cb.lblock > 32 {
					return nil, malformed("code-block length indicator too long")
				}
			}
			if style&cbHT != 0 {
				v, err := readHTLengths(br, cb, n)
				if err != nil {
					return nil, err
				}
				if v > 0 {
					out = append(out, blockLen{cb, v})
				}
				continue
			}
			if cb.passes+n > 164 {
				return nil, malformed("more than 164 coding passes in a code-block")
			}
			total := 0
			for n > 0 {
				if len(cb.segs) == 0 || cb.segs[len(cb.segs)-1].passes == cb.segs[len(cb.segs)-1].maxPasses {
					cb.segs = append(cb.segs, segment{maxPasses: nextMaxPasses(cb.segs, style)})
				}
				sg := &cb.segs[len(cb.segs)-1]
				k := min(n, sg.maxPasses-sg.passes)
				bits := cb.lblock + floorLog2(k)
				v, err := br.bits(bits)
				if err != nil {
					return nil, err
				}
				sg.passes += k
				sg.length += v
				cb.passes += k
				total += v
				n -= k
			}
			if total > 0 {
				out = append(out, blockLen{cb, total})
			}
		}
	}
	return out, nil
}

func nextMaxPasses(segs []segment, style byte) int {
	switch {
	case style&cbTermAll != 0:
		return 1
	case style&cbBypass != 0:
		if len(segs) == 0 {
			return 10
		}
		if p := segs[len(segs)-1].maxPasses; p == 1 || p == 10 {
			return 2
		}
		return 1
	}
	return 164
}

func floorLog2(v int) int {
	n := 0
	for v > 1 {
		v >>= 1
		n++
	}
	return n
}

// readPassCount reads the number of new coding passes (Table B.4).
func readPassCount(br *bitReader) (int, error) {
	b, err := br.bit()
	if err != nil || b == 0 {
		return 1, err
	}
	if b, err = br.bit(); err != nil || b == 0 {
		return 2, err
	}
	v, err := br.bits(2)
	if err != nil {
		return 0, err
	}
	if v < 3 {
		return 3 + v, nil
	}
	v, err = br.bits(5)
	if err != nil {
		return 0, err
	}
	if v < 31 {
		return 6 + v, nil
	}
	v, err = br.bits(7)
	return 37 + v, err
}
