package imaging

import (
	"io"

	"github.com/concord-fl/concord/internal/npy"
)

// NPYArray is a parsed .npy file.
type NPYArray = npy.Array

// WriteNPY writes a numpy .npy (version 1.0) file holding data, which must
// already be in the dtype's byte order.
func WriteNPY(w io.Writer, dtype string, shape []int, data []byte) error {
	return npy.Write(w, dtype, shape, data)
}

// ReadNPY parses a .npy file held in memory (C order only).
func ReadNPY(b []byte) (*NPYArray, error) { return npy.Read(b) }
