package eval

import (
	"hash/fnv"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/mlxq/mlxq/quant"
)

// blockRows is the number of weight rows generated and quantized together.
const blockRows = 256

// generate quantizes a random [rows, cols] weight matrix, drawn from
// N(0, 0.02²), into format f with scales of type st, and draws a Linear
// bias when bias is set. Blocks of rows are generated and quantized in
// parallel, each from its own generator, so the result depends on the
// seed alone.
func generate(rows, cols int, f quant.Format, st quant.DType, bias bool, seed uint64) (*quant.Matrix, []float32, error) {
	m := &quant.Matrix{Format: f, Rows: rows, Cols: cols, ScaleType: st}
	rowBytes := quant.RowBytes(cols, f.Bits)
	groupBytes := cols / f.GroupSize * st.Size()
	m.Weight = make([]byte, rows*rowBytes)
	m.Scales = make([]byte, rows*groupBytes)
	if f.HasBiases() {
		m.Biases = make([]byte, rows*groupBytes)
	}
	blocks := (rows + blockRows - 1) / blockRows
	errs := make([]error, blocks)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for b := range blocks {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r0, r1 := b*blockRows, min((b+1)*blockRows, rows)
			rng := rand.New(rand.NewPCG(seed, uint64(b)))
			w := make([]float32, (r1-r0)*cols)
			for i := range w {
				w[i] = float32(0.02 * rng.NormFloat64())
			}
			q, err := quant.Quantize(w, r1-r0, cols, f, st)
			if err != nil {
				errs[b] = err
				return
			}
			copy(m.Weight[r0*rowBytes:], q.Weight)
			copy(m.Scales[r0*groupBytes:], q.Scales)
			if m.Biases != nil {
				copy(m.Biases[r0*groupBytes:], q.Biases)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	if !bias {
		return m, nil, nil
	}
	rng := rand.New(rand.NewPCG(seed, ^uint64(0)))
	b := make([]float32, rows)
	for i := range b {
		b[i] = float32(0.02 * rng.NormFloat64())
	}
	return m, b, nil
}

// inputRows returns the given rows of the random x of a layer at m rows:
// each row of cols values drawn from its own generator, seeded from the
// seed, the layer's key, m and the row, so any subset of rows can be made
// on its own.
func inputRows(dist string, seed uint64, key string, m, cols int, rows []int) []float32 {
	base := hash(key) ^ uint64(m)<<40
	x := make([]float32, len(rows)*cols)
	chunks := min(runtime.GOMAXPROCS(0), len(rows))
	var wg sync.WaitGroup
	for c := range chunks {
		wg.Go(func() {
			for i := c * len(rows) / chunks; i < (c+1)*len(rows)/chunks; i++ {
				rng := rand.New(rand.NewPCG(seed, base^uint64(rows[i])))
				row := x[i*cols : (i+1)*cols]
				for j := range row {
					if dist == Uniform {
						row[j] = float32(2*rng.Float64() - 1)
					} else {
						row[j] = float32(rng.NormFloat64())
					}
				}
			}
		})
	}
	wg.Wait()
	return x
}

// allRows returns 0, 1, ..., m-1.
func allRows(m int) []int {
	rows := make([]int, m)
	for i := range rows {
		rows[i] = i
	}
	return rows
}

// hash returns the FNV-1a hash of s.
func hash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
