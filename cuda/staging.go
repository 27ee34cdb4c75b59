package cuda

import (
	"errors"
	"unsafe"
)

// defaultBankBytes is the most pinned host memory one staging bank grows
// to; transfers larger than a bank go through both banks in turn.
const defaultBankBytes = 16 << 20

// minBankBytes is the smallest bank allocated.
const minBankBytes = 64 << 10

// staging is page-locked host memory for copies between Go memory and the
// device: two banks, so that the host fills one while the device copies
// from the other. Each bank's event marks the last copy that used it. It
// is used only on the executor's thread.
type staging struct {
	cu      *cuAPI
	stream  uintptr
	maxBank int
	size    int // bytes per bank
	banks   [2]bank
	cur     int
}

type bank struct {
	host    unsafe.Pointer
	buf     []byte
	ev      uintptr
	used    int
	pending bool // a copy using the bank may still be running
}

func newStaging(cu *cuAPI, stream uintptr, maxBank int) *staging {
	return &staging{cu: cu, stream: stream, maxBank: maxBank}
}

// reserve makes the banks hold min(n, maxBank) bytes each, waiting for the
// stream first if they must be reallocated.
func (s *staging) reserve(n int) error {
	want := min(max(roundUp(n, minBankBytes), minBankBytes), s.maxBank)
	if s.size >= want {
		return nil
	}
	if err := s.cu.check("cuStreamSynchronize", s.cu.cuStreamSynchronize(s.stream)); err != nil {
		return err
	}
	if err := s.freeHost(); err != nil {
		return err
	}
	for i := range s.banks {
		b := &s.banks[i]
		if b.ev == 0 {
			if err := s.cu.check("cuEventCreate", s.cu.cuEventCreate(&b.ev, eventDisableTiming)); err != nil {
				return err
			}
		}
		if err := s.cu.check("cuMemAllocHost_v2", s.cu.cuMemAllocHost(&b.host, uint64(want))); err != nil {
			s.freeHost()
			return err
		}
		b.buf = unsafe.Slice((*byte)(b.host), want)
	}
	s.size = want
	return nil
}

// freeHost frees the banks' pinned memory; the stream must be idle.
func (s *staging) freeHost() error {
	var errs []error
	for i := range s.banks {
		b := &s.banks[i]
		if b.host != nil {
			errs = append(errs, s.cu.check("cuMemFreeHost", s.cu.cuMemFreeHost(b.host)))
		}
		b.host, b.buf, b.used, b.pending = nil, nil, 0, false
	}
	s.size = 0
	return errors.Join(errs...)
}

// next switches to the other bank, waiting until the device is done with
// it, and empties it.
func (s *staging) next() error {
	s.cur ^= 1
	b := &s.banks[s.cur]
	if b.pending {
		if err := s.cu.check("cuEventSynchronize", s.cu.cuEventSynchronize(b.ev)); err != nil {
			return err
		}
		b.pending = false
	}
	b.used = 0
	return nil
}

// upload queues a copy of src to device address dst on the stream; src may
// be reused when it returns. The copy is ordered with the stream's work.
func (s *staging) upload(dst uint64, src []byte) error {
	if err := s.reserve(len(src)); err != nil {
		return err
	}
	for len(src) > 0 {
		b := &s.banks[s.cur]
		room := s.size - b.used
		if room <= 0 || (room < len(src) && room < s.size/8) {
			if err := s.next(); err != nil {
				return err
			}
			continue
		}
		n := min(room, len(src))
		copy(b.buf[b.used:], src[:n])
		host := unsafe.Add(b.host, b.used)
		if err := s.cu.check("cuMemcpyHtoDAsync_v2", s.cu.cuMemcpyHtoDAsync(dst, host, uint64(n), s.stream)); err != nil {
			return err
		}
		if err := s.cu.check("cuEventRecord", s.cu.cuEventRecord(b.ev, s.stream)); err != nil {
			return err
		}
		b.pending = true
		b.used += roundUp(n, allocAlign)
		dst += uint64(n)
		src = src[n:]
	}
	return nil
}

// download copies device memory at src into dst, after the stream's
// earlier work, one bank at a time while the other is being filled.
func (s *staging) download(dst []byte, src uint64) error {
	if err := s.reserve(len(dst)); err != nil {
		return err
	}
	var out [2][]byte // the part of dst each bank's copy fills
	drain := func(i int) error {
		if out[i] == nil {
			return nil
		}
		b := &s.banks[i]
		if err := s.cu.check("cuEventSynchronize", s.cu.cuEventSynchronize(b.ev)); err != nil {
			return err
		}
		copy(out[i], b.buf)
		out[i], b.pending, b.used = nil, false, 0
		return nil
	}
	for len(dst) > 0 {
		if err := s.next(); err != nil {
			return err
		}
		i := s.cur
		if err := drain(i); err != nil {
			return err
		}
		b := &s.banks[i]
		n := min(s.size, len(dst))
		if err := s.cu.check("cuMemcpyDtoHAsync_v2", s.cu.cuMemcpyDtoHAsync(b.host, src, uint64(n), s.stream)); err != nil {
			return err
		}
		if err := s.cu.check("cuEventRecord", s.cu.cuEventRecord(b.ev, s.stream)); err != nil {
			return err
		}
		b.pending, b.used = true, s.size
		out[i] = dst[:n]
		src += uint64(n)
		dst = dst[n:]
	}
	// Drain the older copy first.
	return errors.Join(drain(s.cur^1), drain(s.cur))
}

// finish waits for the stream and empties both banks.
func (s *staging) finish() error {
	err := s.cu.check("cuStreamSynchronize", s.cu.cuStreamSynchronize(s.stream))
	for i := range s.banks {
		s.banks[i].used, s.banks[i].pending = 0, false
	}
	return err
}

// release frees the pinned memory and the events.
func (s *staging) release() error {
	errs := []error{s.freeHost()}
	for i := range s.banks {
		if ev := s.banks[i].ev; ev != 0 {
			errs = append(errs, s.cu.check("cuEventDestroy_v2", s.cu.cuEventDestroy(ev)))
			s.banks[i].ev = 0
		}
	}
	return errors.Join(errs...)
}
