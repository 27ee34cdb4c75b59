package loader

import (
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
)

// indexFile is the index that sharded models may carry.
const indexFile = "model.safetensors.index.json"

// readIndex reads the weight_map of the model's index, if it has one. It
// maps tensor names to file names.
func readIndex(src source, dir string) (map[string]string, error) {
	data, err := src.readFile(src.join(dir, indexFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fileError(err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, errorf(ErrConfig, "%s: %w", indexFile, err)
	}
	if idx.WeightMap == nil {
		return nil, errorf(ErrConfig, "%s: no weight_map", indexFile)
	}
	for _, name := range slices.Sorted(maps.Keys(idx.WeightMap)) {
		f := idx.WeightMap[name]
		if f == "" || f == "." || f == ".." || strings.ContainsAny(f, `/\`) || path.Ext(f) != ".safetensors" {
			return nil, errorf(ErrConfig, "%s: weight_map puts %s in %q, want a .safetensors file of the model directory",
				indexFile, name, f)
		}
	}
	return idx.WeightMap, nil
}

// checkIndex checks that every tensor the index names is in the file it
// names.
func (m *Model) checkIndex(idx map[string]string) error {
	for _, name := range slices.SortedFunc(maps.Keys(idx), compareNames) {
		want := idx[name]
		t, ok := m.tensors[name]
		switch {
		case !ok:
			return &TensorError{File: want, Tensor: name,
				Err: errorf(ErrNotFound, "not found, but %s puts it there", indexFile)}
		case t.File != want:
			return &TensorError{File: want, Tensor: name,
				Err: errorf(ErrNotFound, "not found, but %s puts it there (it is in %s)", indexFile, t.File)}
		}
	}
	return nil
}
