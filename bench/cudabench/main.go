// Command cudabench times mlxq's CUDA kernels for the benchmark of
// docs/perf.md: quantized layers of the benchmark's shapes and formats at
// several M, each figure timed with CUDA events after warm-up, the calls
// rotating through enough copies of the weights to exceed the GPU's L2
// cache several times. It also times the embedded model's seven layers
// recorded in one commit, the cost of launching at decode. It prints one
// JSON object per line; bench/cuda.sh merges them with the PyTorch peers
// of bench/cuda_peer.py into one table. Every QMM figure of bf16
// activations is timed twice: with the backend's own kernel (kernel "qmm")
// and through the backend's dequant + cuBLAS path (kernel "qmm+cublas",
// whatever M); rows the driver's default rule would not run are marked
// not planned (it takes the cuBLAS path from M = Driver.CUBLASMinM on).
//
// Usage: cudabench [-quick] [-footprint MB]
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/mlxq/mlxq"
	"github.com/mlxq/mlxq/cuda"
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/layers"
	"github.com/mlxq/mlxq/loader"
	"github.com/mlxq/mlxq/quant"
)

// A shape is N×K: the weight's output and input features.
type shape struct{ n, k int }

// A layerCase is one shape and format, run at several M and dtypes.
type layerCase struct {
	shape
	bits, gs int
}

func cases(quick bool) []layerCase {
	shapes := []shape{{4096, 4096}, {14336, 4096}, {4096, 14336}, {16384, 16384}, {28672, 8192}}
	if quick {
		shapes = shapes[:2]
	}
	var out []layerCase
	for _, s := range shapes {
		for _, gs := range []int{32, 64, 128} {
			out = append(out, layerCase{s, 4, gs})
		}
	}
	for _, bits := range []int{2, 3, 8} {
		out = append(out, layerCase{shape{14336, 4096}, bits, 64})
	}
	return out
}

// row is one printed figure.
type row struct {
	Kind    string  `json:"kind"`
	N       int     `json:"n,omitempty"`
	K       int     `json:"k,omitempty"`
	Bits    int     `json:"bits,omitempty"`
	GS      int     `json:"gs,omitempty"`
	DType   string  `json:"dtype,omitempty"`
	M       int     `json:"m,omitempty"`
	Kernel  string  `json:"kernel,omitempty"`
	Planned bool    `json:"planned,omitempty"`
	Copies  int     `json:"copies,omitempty"`
	US      float64 `json:"us"`
	Bytes   int     `json:"bytes,omitempty"`
	TBps    float64 `json:"tbps,omitempty"`
	TFLOPs  float64 `json:"tflops,omitempty"`
	Layers  int     `json:"layers,omitempty"`
	Path    string  `json:"path,omitempty"`
	Note    string  `json:"note,omitempty"`
}

func emit(r row) {
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
}

func main() {
	quick := flag.Bool("quick", false, "two shapes only")
	footprint := flag.Int("footprint", 360, "MB of weight copies each figure rotates through (the H200's L2 is 60 MB)")
	flag.Parse()
	if err := run(*quick, *footprint<<20); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// drv is the CUDA driver under dev, which switches the cuBLAS path.
var drv *cuda.Driver

func run(quick bool, footprint int) error {
	d, err := cuda.Open()
	if err != nil {
		return err
	}
	drv = d
	dev := engine.NewDevice(cuda.Name, d)
	defer dev.Close()
	if dev.Timer() == nil {
		return errors.New("the cuda device has no event timer")
	}
	emit(row{Kind: "device", Note: dev.Name()})
	// The plan's rule, then the own kernels first; the cuBLAS path only
	// where asked for.
	blasFrom = drv.CUBLASMinM()
	if err := drv.SetCUBLAS(false); err != nil {
		return err
	}
	blas := drv.SetCUBLAS(true)
	_ = drv.SetCUBLAS(false)
	emit(row{Kind: "cublas_path", Note: drv.CUBLAS()})
	cublasOK = blas == nil
	if err := chain(dev); err != nil {
		return fmt.Errorf("chain: %w", err)
	}
	for _, c := range cases(quick) {
		if err := layer(dev, c, footprint); err != nil {
			return fmt.Errorf("%dx%d %d-bit g%d: %w", c.n, c.k, c.bits, c.gs, err)
		}
	}
	return nil
}

// randomMatrix returns an n×k affine matrix with random codes and BF16
// scales and biases.
func randomMatrix(c layerCase) *quant.Matrix {
	rng := rand.New(rand.NewPCG(uint64(c.n), uint64(c.k)))
	m := &quant.Matrix{Format: quant.Format{Mode: quant.Affine, Bits: c.bits, GroupSize: c.gs}, Rows: c.n, Cols: c.k, ScaleType: quant.BF16}
	m.Weight = make([]byte, c.n*quant.RowBytes(c.k, c.bits))
	for i := 0; i+8 <= len(m.Weight); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			m.Weight[i+j] = byte(v >> (8 * j))
		}
	}
	groups := c.n * c.k / c.gs
	m.Scales, m.Biases = make([]byte, 2*groups), make([]byte, 2*groups)
	for i := range groups {
		quant.BF16.Store(m.Scales, i, float32(0.001+0.01*rng.Float64()))
		quant.BF16.Store(m.Biases, i, float32(-0.04*rng.Float64()))
	}
	return m
}

// cublasOK says whether the cuBLAS path of QMM can be timed.
var cublasOK bool

// blasFrom is the smallest M at which the driver's default rule sends QMM
// of 16-bit activations through cuBLAS (0: never).
var blasFrom int

// planned says whether the driver's default plan runs kernel k at m rows
// of dtype dt through cuBLAS (viaBLAS) or the own kernel, as timed.
func planned(plan, k engine.Kernel, dt quant.DType, m int, viaBLAS bool) bool {
	blas := k == engine.QMM && dt != quant.F32 && blasFrom > 0 && m >= blasFrom
	return k == plan && viaBLAS == blas
}

var (
	ms      = []int{1, 4, 16, 64, 512, 4096}
	f32Ms   = []int{1, 4096}
	bothMs  = []int{16, 64} // M where both qmv and qmm are timed, to check the crossover
	maxRows = 4096
)

// layer times one shape and format at every M and dtype.
func layer(dev *engine.Device, c layerCase, footprint int) error {
	mat := randomMatrix(c)
	weightBytes := len(mat.Weight) + len(mat.Scales) + len(mat.Biases)
	copies := max(1, min(32, (footprint+weightBytes-1)/weightBytes))
	for _, dt := range []quant.DType{quant.BF16, quant.F32} {
		list := ms
		if dt == quant.F32 {
			list = f32Ms
		}
		ls := make([]*layers.QuantLinear, 0, copies)
		closeAll := func() {
			for _, l := range ls {
				l.Close()
			}
		}
		for range copies {
			l, err := layers.New(dev, "bench", mat, nil, maxRows, layers.WithDType(dt))
			if err != nil {
				closeAll()
				return err
			}
			ls = append(ls, l)
		}
		x := make([]float32, maxRows*c.k)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		if err := dev.UploadFloat32(ls[0].Input(), x); err != nil {
			closeAll()
			return err
		}
		for _, m := range list {
			plan, err := ls[0].Plan(m)
			if err != nil {
				closeAll()
				return err
			}
			kernels := []engine.Kernel{plan.Kernel}
			if slices.Contains(bothMs, m) && dt == quant.BF16 {
				kernels = []engine.Kernel{engine.QMV, engine.QMM}
			}
			for _, k := range kernels {
				paths := []bool{false}
				if k == engine.QMM && dt == quant.BF16 && cublasOK {
					paths = append(paths, true)
				}
				for _, viaBLAS := range paths {
					us, err := timePath(dev, ls, k, m, viaBLAS)
					if err != nil {
						closeAll()
						return fmt.Errorf("%v M=%d %v (cuBLAS %v): %w", dt, m, k, viaBLAS, err)
					}
					read := weightBytes + m*c.k*dt.Size()
					name, path := k.String(), "own"
					if viaBLAS {
						name, path = name+"+cublas", "dequant+cublas"
					}
					emit(row{Kind: "mlxq", N: c.n, K: c.k, Bits: c.bits, GS: c.gs, DType: dtypeName(dt), M: m, Kernel: name,
						Planned: planned(plan.Kernel, k, dt, m, viaBLAS), Copies: copies, US: us, Bytes: read, Path: path,
						TBps: float64(read) / us / 1e6, TFLOPs: 2 * float64(m) * float64(c.n) * float64(c.k) / us / 1e6})
				}
			}
		}
		closeAll()
	}
	return nil
}

func dtypeName(dt quant.DType) string {
	if dt == quant.BF16 {
		return "bfloat16"
	}
	return "float32"
}

// timePath times kernel k as timeLayers does, with the driver's cuBLAS
// path of QMM on (at every M) or off.
func timePath(dev *engine.Device, ls []*layers.QuantLinear, k engine.Kernel, m int, viaBLAS bool) (float64, error) {
	if !viaBLAS {
		return timeLayers(dev, ls, k, m)
	}
	if err := drv.SetCUBLAS(true); err != nil {
		return 0, err
	}
	drv.SetCUBLASMinM(1)
	defer drv.SetCUBLAS(false)
	return timeLayers(dev, ls, k, m)
}

// timeLayers returns the device time in µs of one product of m rows with
// kernel k: each timed run records one product on every copy (all reading
// the first copy's x) in one commit, and the median run is divided by the
// number of copies.
func timeLayers(dev *engine.Device, ls []*layers.QuantLinear, k engine.Kernel, m int) (float64, error) {
	x := ls[0].Input()
	run := func() error {
		e := dev.NewEncoder()
		for _, l := range ls {
			if err := l.EncodeKernel(e, k, x, m); err != nil {
				return err
			}
		}
		return e.Commit()
	}
	times, err := dev.Timer().Time(run, 2, 7)
	if err != nil {
		return 0, err
	}
	slices.Sort(times)
	return times[len(times)/2].Seconds() * 1e6 / float64(len(ls)), nil
}

// chain times the embedded model's seven layers at M = 1, each alone and
// all seven recorded in one commit, and reports the cost per layer.
func chain(dev *engine.Device) error {
	model, err := loader.OpenFS(mlxq.DefaultModel(), ".")
	if err != nil {
		return err
	}
	defer model.Close()
	var ls []*layers.QuantLinear
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for _, ll := range model.Layers() {
		l, err := layers.Load(dev, ll, 1, layers.WithDType(quant.BF16))
		if err != nil {
			return err
		}
		ls = append(ls, l)
		if err := dev.UploadFloat32(l.Input(), make([]float32, l.In)); err != nil {
			return err
		}
	}
	oneCommit := func() error {
		e := dev.NewEncoder()
		for _, l := range ls {
			if _, err := l.Encode(e, l.Input(), 1); err != nil {
				return err
			}
		}
		return e.Commit()
	}
	device, err := dev.Timer().Time(oneCommit, 5, 21)
	if err != nil {
		return err
	}
	host := make([]time.Duration, 21)
	for i := range host {
		start := time.Now()
		if err := oneCommit(); err != nil {
			return err
		}
		host[i] = time.Since(start)
	}
	slices.Sort(device)
	slices.Sort(host)
	d, h := device[len(device)/2].Seconds()*1e6, host[len(host)/2].Seconds()*1e6
	emit(row{Kind: "chain", Layers: len(ls), US: d, Note: fmt.Sprintf("device %.1f µs (%.2f per layer), host wall %.1f µs (%.2f per layer) for %d layers in one commit, M=1 bf16",
		d, d/float64(len(ls)), h, h/float64(len(ls)), len(ls))})
	return nil
}
