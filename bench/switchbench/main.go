// Command switchbench times mlxq's gathered products (SwitchLinear, MLX's
// gather_qmm) on the CUDA backend, on the expert shapes of Qwen3-30B-A3B
// (128 experts of 768×2048 and 2048×768, 4-bit group 64, bf16 activations,
// 8 experts per token):
//
//   - decode, M = 1: against reading only the k experts' bytes at the
//     streaming rate measured in the same run (a 16384×16384 qmv at M = 1,
//     rotating copies past the L2 cache), and against the k experts run one
//     at a time as QuantLinear layers;
//   - prefill, M = 512 with random routing: against each expert's rows run
//     through its own QuantLinear, one expert after another (the rows
//     already grouped and on the device, so the loop's gather and scatter
//     are not counted).
//
// Each figure is timed with the engine's Timer (CUDA events on the
// device's stream) after warm-up; a timed run records several products in
// one commit, each routed to other experts, so that the experts of one
// product are out of the L2 cache when they come round again, and the
// time per product is the run's over their number. It includes the write
// of each product's routing, which a model's forward pass makes too. It
// prints one JSON object per line.
//
// Usage: switchbench [-backend cuda] [-quick]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	_ "github.com/mlxq/mlxq/cpu"
	_ "github.com/mlxq/mlxq/cuda"
	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/layers"
	"github.com/mlxq/mlxq/quant"
)

// row is one printed figure.
type row struct {
	Kind    string  `json:"kind"`
	N       int     `json:"n,omitempty"`
	K       int     `json:"k,omitempty"`
	Experts int     `json:"experts,omitempty"`
	TopK    int     `json:"top_k,omitempty"`
	M       int     `json:"m,omitempty"`
	Kernel  string  `json:"kernel,omitempty"`
	US      float64 `json:"us,omitempty"`
	Bytes   int     `json:"bytes,omitempty"`
	TBps    float64 `json:"tbps,omitempty"`
	TFLOPs  float64 `json:"tflops,omitempty"`
	// Versus is what US is compared with: "stream" (the bytes read at the
	// measured streaming rate) or "per-expert" (the experts one at a time
	// as QuantLinear layers); VersusUS is its time and Ratio US/VersusUS.
	Versus   string  `json:"versus,omitempty"`
	VersusUS float64 `json:"versus_us,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
	Note     string  `json:"note,omitempty"`
}

func emit(r row) {
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
}

// setup is the benchmark's sizes.
type setup struct {
	experts, topK, prefill int
	shapes                 [][2]int // N×K of each expert
	stream                 [2]int   // the shape the streaming rate is measured on
	streamCopies           int
}

func main() {
	backend := flag.String("backend", "cuda", "backend to time ("+engine.Auto+" or a backend built in)")
	quick := flag.Bool("quick", false, "small sizes, to try the program out (on the cpu backend, say)")
	flag.Parse()
	s := setup{experts: 128, topK: 8, prefill: 512, shapes: [][2]int{{768, 2048}, {2048, 768}}, stream: [2]int{16384, 16384}, streamCopies: 4}
	if *quick {
		s = setup{experts: 16, topK: 4, prefill: 32, shapes: [][2]int{{64, 256}, {256, 64}}, stream: [2]int{512, 512}, streamCopies: 2}
	}
	if err := run(*backend, s); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(backend string, s setup) error {
	dev, err := engine.Open(backend)
	if err != nil {
		return err
	}
	defer dev.Close()
	timer := dev.Timer()
	note := "device clock"
	if timer == nil {
		timer, note = hostTimer{}, "host clock: the backend has no device timer"
	}
	emit(row{Kind: "device", Note: fmt.Sprintf("%s (%s); %s", dev.Name(), dev.Backend(), note)})
	rate, err := streamRate(dev, timer, s)
	if err != nil {
		return fmt.Errorf("streaming rate: %w", err)
	}
	for _, shape := range s.shapes {
		if err := experts(dev, timer, s, shape[0], shape[1], rate); err != nil {
			return fmt.Errorf("%dx%d: %w", shape[0], shape[1], err)
		}
	}
	return nil
}

// randomMatrix returns an n×k affine 4-bit group-64 matrix with random
// codes and BF16 scales and biases.
func randomMatrix(rng *rand.Rand, n, k int) *quant.Matrix {
	m := &quant.Matrix{Format: quant.Format{Mode: quant.Affine, Bits: 4, GroupSize: 64}, Rows: n, Cols: k, ScaleType: quant.BF16}
	m.Weight = make([]byte, n*quant.RowBytes(k, 4))
	for i := 0; i+8 <= len(m.Weight); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			m.Weight[i+j] = byte(v >> (8 * j))
		}
	}
	groups := n * k / 64
	m.Scales, m.Biases = make([]byte, 2*groups), make([]byte, 2*groups)
	for i := range groups {
		quant.BF16.Store(m.Scales, i, float32(0.001+0.01*rng.Float64()))
		quant.BF16.Store(m.Biases, i, float32(-0.04*rng.Float64()))
	}
	return m
}

// timeOf returns the median device time in µs of run, divided by the
// products one run records.
func timeOf(timer engine.Timer, products int, run func() error) (float64, error) {
	times, err := timer.Time(run, 3, 9)
	if err != nil {
		return 0, err
	}
	slices.Sort(times)
	return times[len(times)/2].Seconds() * 1e6 / float64(products), nil
}

// streamRate measures the weight bytes per second qmv reads at M = 1 on a
// large layer, rotating copies of it past the L2 cache, and reports it.
func streamRate(dev *engine.Device, timer engine.Timer, s setup) (float64, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	m := randomMatrix(rng, s.stream[0], s.stream[1])
	var ls []*layers.QuantLinear
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range s.streamCopies {
		l, err := layers.New(dev, "stream", m, nil, 1, layers.WithDType(quant.BF16))
		if err != nil {
			return 0, err
		}
		ls = append(ls, l)
	}
	if err := dev.UploadFloat32(ls[0].Input(), make([]float32, s.stream[1])); err != nil {
		return 0, err
	}
	us, err := timeOf(timer, len(ls), func() error {
		e := dev.NewEncoder()
		for _, l := range ls {
			if err := l.EncodeKernel(e, engine.QMV, ls[0].Input(), 1); err != nil {
				return err
			}
		}
		return e.Commit()
	})
	if err != nil {
		return 0, err
	}
	rate := float64(ls[0].Bytes()) / us / 1e6
	emit(row{Kind: "stream", N: s.stream[0], K: s.stream[1], M: 1, Kernel: "qmv", US: us, Bytes: ls[0].Bytes(), TBps: rate,
		Note: fmt.Sprintf("%d copies rotated", s.streamCopies)})
	return rate, nil
}

// experts times the decode and prefill figures of one expert shape.
func experts(dev *engine.Device, timer engine.Timer, s setup, n, k int, rate float64) error {
	rng := rand.New(rand.NewPCG(uint64(n), uint64(k)))
	mats := make([]*quant.Matrix, s.experts)
	for e := range mats {
		mats[e] = randomMatrix(rng, n, k)
	}
	sw, err := layers.NewSwitch(dev, fmt.Sprintf("%dx%d", n, k), mats, nil, s.topK, s.prefill, layers.WithDType(quant.BF16))
	if err != nil {
		return err
	}
	defer sw.Close()
	lin := make([]*layers.QuantLinear, s.experts)
	defer func() {
		for _, l := range lin {
			if l != nil {
				l.Close()
			}
		}
	}()
	for e, m := range mats {
		if lin[e], err = layers.New(dev, fmt.Sprintf("expert %d", e), m, nil, s.prefill, layers.WithDType(quant.BF16)); err != nil {
			return err
		}
	}
	x := make([]float32, s.prefill*k)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	if err := dev.UploadFloat32(sw.Input(), x); err != nil {
		return err
	}
	if err := decode(dev, timer, s, sw, lin, rate); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if err := prefill(dev, timer, s, sw, lin, x, rng); err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	return nil
}

// decode times one row of x through topK experts, the products of a run
// taking the experts in turn (product i the experts topK·i .. topK·i +
// topK - 1) so that a run touches every expert once.
func decode(dev *engine.Device, timer engine.Timer, s setup, sw *layers.SwitchLinear, lin []*layers.QuantLinear, rate float64) error {
	products := s.experts / s.topK
	routes := make([][]int32, products)
	for i := range routes {
		for j := range s.topK {
			routes[i] = append(routes[i], int32(i*s.topK+j))
		}
	}
	bytes := s.topK * sw.ExpertBytes()
	ideal := float64(bytes) / rate / 1e6
	for _, kern := range engine.GatherKernels() {
		us, err := timeOf(timer, products, func() error {
			e := dev.NewEncoder()
			for _, r := range routes {
				if err := sw.EncodeKernel(e, kern, sw.Input(), r, 1); err != nil {
					return err
				}
			}
			return e.Commit()
		})
		if err != nil {
			return err
		}
		planned, err := sw.Plan(1)
		if err != nil {
			return err
		}
		note := ""
		if kern == planned {
			note = "planned"
		}
		emit(row{Kind: "decode", N: sw.Out, K: sw.In, Experts: s.experts, TopK: s.topK, M: 1, Kernel: kern.String(), US: us, Bytes: bytes,
			TBps: float64(bytes) / us / 1e6, Versus: "stream", VersusUS: ideal, Ratio: us / ideal, Note: note})
	}
	us, err := timeOf(timer, products, func() error {
		e := dev.NewEncoder()
		for _, r := range routes {
			for _, ex := range r {
				if _, err := lin[ex].Encode(e, sw.Input(), 1); err != nil {
					return err
				}
			}
		}
		return e.Commit()
	})
	if err != nil {
		return err
	}
	emit(row{Kind: "decode", N: sw.Out, K: sw.In, Experts: s.experts, TopK: s.topK, M: 1, Kernel: "per-expert", US: us, Bytes: bytes,
		TBps: float64(bytes) / us / 1e6, Versus: "stream", VersusUS: ideal, Ratio: us / ideal, Note: "the k experts as QuantLinear layers, one dispatch each"})
	return nil
}

// prefill times s.prefill rows of x, each routed to topK distinct random
// experts, through the gathered products and through each expert's
// QuantLinear on its own rows.
func prefill(dev *engine.Device, timer engine.Timer, s setup, sw *layers.SwitchLinear, lin []*layers.QuantLinear, x []float32, rng *rand.Rand) error {
	m, k := s.prefill, sw.In
	var route []int32
	rows := make([][]int, s.experts)
	for r := range m {
		for _, e := range rng.Perm(s.experts)[:s.topK] {
			route = append(route, int32(e))
			rows[e] = append(rows[e], r)
		}
	}
	for e, rs := range rows {
		xe := make([]float32, 0, len(rs)*k)
		for _, r := range rs {
			xe = append(xe, x[r*k:(r+1)*k]...)
		}
		if err := dev.UploadFloat32(lin[e].Input(), xe); err != nil {
			return err
		}
	}
	loop, err := timeOf(timer, 1, func() error {
		e := dev.NewEncoder()
		for ex, l := range lin {
			if len(rows[ex]) == 0 {
				continue
			}
			if _, err := l.Encode(e, l.Input(), len(rows[ex])); err != nil {
				return err
			}
		}
		return e.Commit()
	})
	if err != nil {
		return err
	}
	used := 0
	for _, rs := range rows {
		if len(rs) > 0 {
			used++
		}
	}
	bytes := used * sw.ExpertBytes()
	flops := 2 * float64(m*s.topK) * float64(sw.Out) * float64(k)
	emit(row{Kind: "prefill", N: sw.Out, K: k, Experts: s.experts, TopK: s.topK, M: m, Kernel: "per-expert", US: loop, Bytes: bytes,
		TBps: float64(bytes) / loop / 1e6, TFLOPs: flops / loop / 1e6, Note: "each expert's rows through its QuantLinear, one expert after another, in one commit"})
	planned, err := sw.Plan(m)
	if err != nil {
		return err
	}
	for _, kern := range engine.GatherKernels() {
		us, err := timeOf(timer, 1, func() error {
			e := dev.NewEncoder()
			if err := sw.EncodeKernel(e, kern, sw.Input(), route, m); err != nil {
				return err
			}
			return e.Commit()
		})
		if err != nil {
			return err
		}
		note := ""
		if kern == planned {
			note = "planned"
		}
		emit(row{Kind: "prefill", N: sw.Out, K: k, Experts: s.experts, TopK: s.topK, M: m, Kernel: kern.String(), US: us, Bytes: bytes,
			TBps: float64(bytes) / us / 1e6, TFLOPs: flops / us / 1e6, Versus: "per-expert", VersusUS: loop, Ratio: us / loop, Note: note})
	}
	return nil
}

// hostTimer times runs on the host's clock, for backends without a
// device timer.
type hostTimer struct{}

// Time runs run warmup times, then times repeat runs.
func (hostTimer) Time(run func() error, warmup, repeat int) ([]time.Duration, error) {
	for range warmup {
		if err := run(); err != nil {
			return nil, err
		}
	}
	out := make([]time.Duration, repeat)
	for i := range out {
		start := time.Now()
		if err := run(); err != nil {
			return nil, err
		}
		out[i] = time.Since(start)
	}
	return out, nil
}
