package layers

import (
	"fmt"

	"github.com/mlxq/mlxq/engine"
	"github.com/mlxq/mlxq/loader"
	"github.com/mlxq/mlxq/quant"
)

// QuantEmbedding is a quantized token embedding, MLX's QuantizedEmbedding:
// a [Vocab, Dims] quantized matrix on a device, packed as stored, whose
// rows a lookup dequantizes by token id into an output buffer of the
// activation dtype allocated once for MaxSeqLen ids. Models with tied
// embeddings run the same matrix as their output head (AsLinear).
type QuantEmbedding struct {
	Name string
	quant.Format
	// Vocab is the number of rows (token ids); Dims the features of each.
	Vocab, Dims int
	// MaxSeqLen is the most ids one lookup takes.
	MaxSeqLen int
	// DType is the activation dtype of the output: F32 (the default), F16
	// or BF16.
	DType quant.DType

	dev   *engine.Device
	bytes int

	w, scales, biases *engine.Buffer
	index, y          *engine.Buffer
}

// LoadEmbedding builds the embedding from a loaded 2-D layer of a model
// (such as model.embed_tokens). WithDType sets the output's dtype;
// WithKernel, if given, must be engine.Embed.
func LoadEmbedding(dev *engine.Device, l *loader.Layer, maxSeqLen int, opts ...Option) (*QuantEmbedding, error) {
	if l.Experts > 0 {
		return nil, fmt.Errorf("layer %s stacks %d experts: not an embedding", l.Name, l.Experts)
	}
	return NewEmbedding(dev, l.Name, l.Matrix(0), maxSeqLen, opts...)
}

// NewEmbedding builds an embedding named name from a quantized matrix of
// Rows = Vocab token rows of Cols = Dims features.
func NewEmbedding(dev *engine.Device, name string, m *quant.Matrix, maxSeqLen int, opts ...Option) (*QuantEmbedding, error) {
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("layer %s: %w", name, err)
	}
	if maxSeqLen <= 0 {
		return nil, fmt.Errorf("layer %s: max_seq_len %d, want > 0", name, maxSeqLen)
	}
	o := buildOptions(opts)
	if o.kernel != nil {
		if err := checkKernel(dev, name, *o.kernel, engine.OpEmbed, m.Format); err != nil {
			return nil, err
		}
	}
	if err := checkDType(name, o.dtype); err != nil {
		return nil, err
	}
	if err := checkKernel(dev, name, engine.Embed, engine.OpEmbed, m.Format); err != nil {
		return nil, err
	}
	e := &QuantEmbedding{Name: name, Format: m.Format, Vocab: m.Rows, Dims: m.Cols, MaxSeqLen: maxSeqLen, DType: o.dtype, dev: dev,
		bytes: len(m.Weight) + len(m.Scales) + len(m.Biases)}
	if err := e.upload(m); err != nil {
		e.Close()
		return nil, fmt.Errorf("layer %s: %w", name, err)
	}
	return e, nil
}

func (e *QuantEmbedding) upload(m *quant.Matrix) error {
	var err error
	ng := m.Groups()
	if e.w, err = allocOn(e.dev, quant.U32, m.Weight, m.Rows, m.RowBytes()/4); err != nil {
		return err
	}
	if e.scales, err = allocOn(e.dev, m.ScaleType, m.Scales, m.Rows, ng); err != nil {
		return err
	}
	if m.Biases != nil {
		if e.biases, err = allocOn(e.dev, m.ScaleType, m.Biases, m.Rows, ng); err != nil {
			return err
		}
	}
	if e.index, err = allocOn(e.dev, quant.I32, nil, e.MaxSeqLen); err != nil {
		return err
	}
	e.y, err = allocOn(e.dev, e.DType, nil, e.MaxSeqLen, e.Dims)
	return err
}

// allocOn allocates a buffer on dev and uploads data into it, if any.
func allocOn(dev *engine.Device, dt quant.DType, data []byte, shape ...int) (*engine.Buffer, error) {
	b, err := dev.Alloc(dt, shape...)
	if err != nil {
		return nil, err
	}
	if data != nil {
		if err := dev.Upload(b, data); err != nil {
			b.Free()
			return nil, err
		}
	}
	return b, nil
}

// Device returns the device the embedding lives on.
func (e *QuantEmbedding) Device() *engine.Device { return e.dev }

// Bytes returns the size of the quantized matrix as stored on disk
// (codes, scales and biases).
func (e *QuantEmbedding) Bytes() int { return e.bytes }

// DeviceBytes returns the size of the device buffers holding the matrix:
// Bytes, the words being packed as stored.
func (e *QuantEmbedding) DeviceBytes() int {
	n := e.w.Bytes() + e.scales.Bytes()
	if e.biases != nil {
		n += e.biases.Bytes()
	}
	return n
}

// RowBytes returns the bytes of one token's row as stored (its codes,
// scales and biases), the bytes a lookup reads per id.
func (e *QuantEmbedding) RowBytes() int { return e.bytes / e.Vocab }

// Precision returns the arithmetic of the lookup, which sets the accuracy
// it is held to.
func (e *QuantEmbedding) Precision() engine.Precision {
	return e.dev.Precision(engine.Variant{Kernel: engine.Embed, Format: e.Format, Act: e.DType, Scale: e.scales.DType()})
}

// Output returns the lookup's buffer, [MaxSeqLen, Dims] of DType; Encode
// writes its first rows.
func (e *QuantEmbedding) Output() *engine.Buffer { return e.y }

// Encode records the lookup of ids (at most MaxSeqLen, each in
// [0, Vocab)) into the output buffer, which it returns: row i holds the
// dequantized row of ids[i] once enc is committed. An id out of range is
// an error naming it and the vocabulary size; nothing is recorded then.
func (e *QuantEmbedding) Encode(enc *engine.Encoder, ids []int32) (*engine.Buffer, error) {
	if len(ids) == 0 || len(ids) > e.MaxSeqLen {
		return nil, fmt.Errorf("layer %s: %w: %d ids, max_seq_len %d", e.Name, ErrSeqLen, len(ids), e.MaxSeqLen)
	}
	err := enc.Embed(&engine.EmbedArgs{
		Params: engine.Params{M: len(ids), N: e.Vocab, K: e.Dims, Format: e.Format, Act: e.DType},
		IDs:    ids, Index: e.index, W: e.w, Scales: e.scales, Biases: e.biases, Y: e.y,
	})
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", e.Name, err)
	}
	return e.y, nil
}

// Lookup returns the dequantized rows of ids, len(ids)·Dims values
// widened exactly from DType.
func (e *QuantEmbedding) Lookup(ids []int32) ([]float32, error) {
	enc := e.dev.NewEncoder()
	if _, err := e.Encode(enc, ids); err != nil {
		return nil, err
	}
	if err := enc.Commit(); err != nil {
		return nil, fmt.Errorf("layer %s: %w", e.Name, err)
	}
	y := make([]float32, len(ids)*e.Dims)
	if err := e.dev.DownloadFloat32(y, e.y); err != nil {
		return nil, fmt.Errorf("layer %s: %w", e.Name, err)
	}
	return y, nil
}

// AsLinear returns the embedding's matrix as a QuantLinear, the output
// head of a model with tied embeddings: y = x·Wᵀ, In = Dims, Out = Vocab,
// on the same device tensors (no second copy), with x and y buffers of its
// own for maxSeqLen rows. Its options are a QuantLinear's; its kernel must
// read the packed words. The head's Close frees its x and y only; it must
// not be used once the embedding is closed.
func (e *QuantEmbedding) AsLinear(maxSeqLen int, opts ...Option) (*QuantLinear, error) {
	name := e.Name + " (tied head)"
	if maxSeqLen <= 0 {
		return nil, fmt.Errorf("layer %s: max_seq_len %d, want > 0", name, maxSeqLen)
	}
	l, err := newLinear(e.dev, name, e.Format, e.Dims, e.Vocab, maxSeqLen, opts)
	if err != nil {
		return nil, err
	}
	if l.layout != engine.Packed {
		return nil, fmt.Errorf("layer %s: %w: its kernel reads the %v layout, the embedding keeps the packed words", name, engine.ErrUnsupported, l.layout)
	}
	l.w, l.scales, l.biases, l.bytes, l.shared = e.w, e.scales, e.biases, e.bytes, true
	if l.x, err = allocOn(e.dev, l.DType, nil, maxSeqLen, l.In); err != nil {
		return nil, fmt.Errorf("layer %s: %w", name, err)
	}
	if l.y, err = allocOn(e.dev, l.DType, nil, maxSeqLen, l.Out); err != nil {
		l.Close()
		return nil, fmt.Errorf("layer %s: %w", name, err)
	}
	return l, nil
}

// Close frees the embedding's device buffers.
func (e *QuantEmbedding) Close() {
	for _, b := range []*engine.Buffer{e.w, e.scales, e.biases, e.index, e.y} {
		b.Free()
	}
}
