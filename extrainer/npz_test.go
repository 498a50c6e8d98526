package extrainer

import (
	"os"

	"github.com/concord-fl/concord/internal/npy"
)

// npyArray is one array to store in a .npz: uint8 data in C order.
type npyArray struct {
	shape []int
	data  []byte
}

// writeNPZ writes uint8 arrays as numpy's .npz, as MedMNIST ships them.
func writeNPZ(path string, arrays map[string]npyArray) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	all := map[string]*npy.Array{}
	for name, a := range arrays {
		all[name] = &npy.Array{Dtype: "|u1", Shape: a.shape, Data: a.data}
	}
	if err := npy.WriteNPZ(f, all); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
