package jpeg2000

// Tier 2 for HT code-blocks (T.814 clause B.3): a code-block's passes form a
// cleanup segment (Lcup bytes) and a refinement segment (Lref bytes, SigProp and
// MagRef) instead of Part 1's terminated segments.
//
// A first contribution of more than three passes starts with placeholder passes,
// three per skipped bit-plane: they are folded into the missing MSBs (cb.zbp)
// and leave one to three nreal passes. Later contributions add refinement passes
// to the same HT set; a second HT set (more than three nreal passes, which only
// a decoder keeping several sets could use) is refused.

// readHTLengths reads the segment lengths of n new passes of cb and returns the
// number of body bytes they add.
func readHTLengths(br *bitReader, cb *codeBlock, n int) (int, error) {
	if cb.passes == 0 {
		phld := (n - 1) / 3
		nreal := n - 3*phld
		cb.zbp += phld
		lcup, err := br.bits(cb.lblock + floorLog2(3*phld+1))
		if err != nil {
			return 0, err
		}
		cb.segs = append(cb.segs[:0], segment{passes: 1, maxPasses: 1, length: lcup})
		cb.passes = nreal
		total := lcup
		if nreal > 1 {
			lref, err := br.bits(cb.lblock + floorLog2(nreal-1))
			if err != nil {
				return 0, err
			}
			cb.segs = append(cb.segs, segment{passes: nreal - 1, maxPasses: 2, length: lref})
			total += lref
		}
		return total, nil
	}
	if cb.passes+n > 3 {
		return 0, unsupported("HT code-block with more than one HT set (%d coding passes)", cb.passes+n)
	}
	v, err := br.bits(cb.lblock + floorLog2(n))
	if err != nil {
		return 0, err
	}
	if len(cb.segs) == 1 {
		cb.segs = append(cb.segs, segment{maxPasses: 2})
	}
	cb.segs[1].passes += n
	cb.segs[1].length += v
	cb.passes += n
	return v, nil
}
