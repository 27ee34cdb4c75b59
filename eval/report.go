package eval

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// A Report is what a run of a batch found: every case that ran, in order.
type Report struct {
	// Name is the config's name.
	Name string `json:"name"`
	// Config is the config that ran, with defaults and overrides applied.
	Config *Config `json:"config"`
	// Started is when the run began; Seconds is how long it took.
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	// GoVersion, OS and Arch describe the program.
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	// Devices are the devices the cases ran on.
	Devices []Device `json:"devices"`
	// Interrupted reports a run stopped before its last case; Cases then
	// holds the cases that ran.
	Interrupted bool `json:"interrupted"`
	// Total is the number of cases the config lists; Skipped the
	// combinations "kernels: all" left out (Batch.Skipped).
	Total   int `json:"total"`
	Skipped int `json:"skipped"`
	// Notes say which numbers of shards of the config did not run, and
	// why (too few devices of a backend, no collectives on it).
	Notes []string `json:"notes,omitempty"`
	// Passed and Failed count the cases that ran.
	Passed int `json:"passed"`
	Failed int `json:"failed"`
	// Cases are the cases that ran.
	Cases []Case `json:"cases"`
}

// Device describes a device the cases ran on.
type Device struct {
	Backend string `json:"backend"`
	Name    string `json:"name"`
	// CopyGBps is the device's measured streaming copy bandwidth in GB/s,
	// bytes read plus bytes written per second (STREAM's convention); 0
	// when it was not measured.
	CopyGBps float64 `json:"copy_gb_per_s"`
}

// A Case is one layer at one sequence length on one backend with one
// kernel: its timing and its error against the float64 reference.
type Case struct {
	// Model is the model's path ("synthetic" for a generated layer);
	// Layer is the layer's name, with "[0]" for expert 0 of a layer of
	// stacked experts.
	Model string `json:"model"`
	Layer string `json:"layer"`
	// Kind is the layer's kind (loader.Kind): linear, embedding or
	// switch_linear.
	Kind string `json:"kind"`
	// The layer's format: mode, bits, group size and scale type.
	Mode       string `json:"mode"`
	Bits       int    `json:"bits"`
	GroupSize  int    `json:"group_size"`
	ScaleDType string `json:"scale_dtype"`
	// M, N, K: x is [M, K], the weight [N, K], y [M, N]. For a lookup
	// (kernel embed) M is the ids, N the vocabulary and K the features of
	// each row; for a gathered product (stacked experts) N and K are one
	// expert's, each row of x going through TopK of its Experts.
	M       int `json:"m"`
	N       int `json:"n"`
	K       int `json:"k"`
	TopK    int `json:"top_k,omitempty"`
	Experts int `json:"experts,omitempty"`
	// Shards is the number of devices the layer is split over (1: not
	// split), and Split how: column or row (empty for one shard).
	Shards int    `json:"shards"`
	Split  string `json:"split,omitempty"`
	// Backend and Device name the device (of a split layer, the backend's
	// and its first device); Kernel the kernel that ran, on every shard.
	Backend string `json:"backend"`
	Device  string `json:"device"`
	Kernel  string `json:"kernel"`
	// Planned reports that the kernel is the one the plan picks.
	Planned bool `json:"planned"`
	// DType is the activation dtype, of x and y: f32, f16 or bf16.
	DType string `json:"dtype"`
	// Precision is the kernel's arithmetic, which sets the tolerance.
	Precision string `json:"precision"`
	// Warmup untimed runs preceded Repeat timed ones.
	Warmup int `json:"warmup"`
	Repeat int `json:"repeat"`
	// MedianUS, MinUS and MaxUS are the times of one run in µs.
	MedianUS float64 `json:"median_us"`
	MinUS    float64 `json:"min_us"`
	MaxUS    float64 `json:"max_us"`
	// Bytes is the size of the layer's weights, scales and biases as
	// stored (of the rows looked up, for a lookup; of the experts some row
	// picks, for a gathered product); GBps is Bytes per median run time,
	// and CopyFraction GBps over the device's measured copy bandwidth (0
	// when not measured).
	Bytes        int     `json:"bytes"`
	GBps         float64 `json:"gb_per_s"`
	CopyFraction float64 `json:"copy_fraction"`
	// GFLOPs is 2·M·N·K (2·M·TopK·N·K for a gathered product, 0 for a
	// lookup) per median run time, in GFLOP/s.
	GFLOPs float64 `json:"gflop_per_s"`
	// RelErr is ‖y − ref‖ / ‖ref‖ over CheckedRows rows of y, spread
	// evenly over the M rows (all of them when CheckedRows = M), against
	// the float64 reference.
	RelErr      Float   `json:"rel_err"`
	CheckedRows int     `json:"checked_rows"`
	Tolerance   float64 `json:"tolerance"`
	// Pass reports RelErr ≤ Tolerance (never for NaN) and no Error.
	Pass bool `json:"pass"`
	// Error is why the case could not run, if it could not.
	Error string `json:"error,omitempty"`
}

// Float is a float64 that JSON encodes as a number, or as the string
// "NaN", "+Inf" or "-Inf", which JSON numbers cannot express.
type Float float64

// MarshalJSON encodes f.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return json.Marshal(f.String())
	}
	return json.Marshal(v)
}

// UnmarshalJSON decodes a number or one of the strings MarshalJSON writes.
func (f *Float) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("float %q: %w", s, err)
		}
		*f = Float(v)
		return nil
	}
	return json.Unmarshal(b, (*float64)(f))
}

// String formats f in the shortest form that reads back exactly.
func (f Float) String() string { return strconv.FormatFloat(float64(f), 'g', -1, 64) }
