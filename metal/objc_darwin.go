package metal

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/ebitengine/purego/objc"
)

// Framework paths, opened at Open. Foundation defines NSString and
// NSProcessInfo. CoreGraphics is loaded first because
// command-line processes that have not loaded it can get no default Metal
// device.
const (
	metalPath        = "/System/Library/Frameworks/Metal.framework/Metal"
	foundationPath   = "/System/Library/Frameworks/Foundation.framework/Foundation"
	coreGraphicsPath = "/System/Library/Frameworks/CoreGraphics.framework/CoreGraphics"
	libobjcPath      = "/usr/lib/libobjc.A.dylib"
)

// Constants of the Metal API.
const (
	storageModeShared   = 0         // MTLResourceStorageModeShared
	gpuFamilyApple7     = 1007      // MTLGPUFamilyApple7: M1 and later
	languageVersion3_1  = 3<<16 + 1 // MTLLanguageVersion3_1
	mathModeSafe        = 0         // MTLMathModeSafe
	commandBufferFailed = 5         // MTLCommandBufferStatusError
)

// mtlSize is MTLSize, passed by value.
type mtlSize struct{ W, H, D uint64 }

func sizeOf(v [3]int) mtlSize { return mtlSize{uint64(v[0]), uint64(v[1]), uint64(v[2])} }

// osVersion is NSOperatingSystemVersion.
type osVersion struct{ Major, Minor, Patch int64 }

func (v osVersion) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Selectors, registered once.
var (
	selAlloc                   = objc.RegisterName("alloc")
	selInit                    = objc.RegisterName("init")
	selRelease                 = objc.RegisterName("release")
	selRetain                  = objc.RegisterName("retain")
	selCount                   = objc.RegisterName("count")
	selObjectAtIndex           = objc.RegisterName("objectAtIndex:")
	selInitWithUTF8String      = objc.RegisterName("initWithUTF8String:")
	selUTF8String              = objc.RegisterName("UTF8String")
	selLocalizedDescription    = objc.RegisterName("localizedDescription")
	selRespondsToSelector      = objc.RegisterName("respondsToSelector:")
	selProcessInfo             = objc.RegisterName("processInfo")
	selOperatingSystemVersion  = objc.RegisterName("operatingSystemVersion")
	selName                    = objc.RegisterName("name")
	selSupportsFamily          = objc.RegisterName("supportsFamily:")
	selNewCommandQueue         = objc.RegisterName("newCommandQueue")
	selMaxThreadgroupMemory    = objc.RegisterName("maxThreadgroupMemoryLength")
	selRecommendedWorkingSet   = objc.RegisterName("recommendedMaxWorkingSetSize")
	selNewBufferWithLength     = objc.RegisterName("newBufferWithLength:options:")
	selNewBufferWithBytes      = objc.RegisterName("newBufferWithBytes:length:options:")
	selContents                = objc.RegisterName("contents")
	selSetFastMathEnabled      = objc.RegisterName("setFastMathEnabled:")
	selSetMathMode             = objc.RegisterName("setMathMode:")
	selSetLanguageVersion      = objc.RegisterName("setLanguageVersion:")
	selNewLibraryWithSource    = objc.RegisterName("newLibraryWithSource:options:error:")
	selNewFunctionWithName     = objc.RegisterName("newFunctionWithName:")
	selNewPipelineWithFunction = objc.RegisterName("newComputePipelineStateWithFunction:error:")
	selMaxTotalThreads         = objc.RegisterName("maxTotalThreadsPerThreadgroup")
	selThreadExecutionWidth    = objc.RegisterName("threadExecutionWidth")
	selCommandBuffer           = objc.RegisterName("commandBuffer")
	selComputeCommandEncoder   = objc.RegisterName("computeCommandEncoder")
	selBlitCommandEncoder      = objc.RegisterName("blitCommandEncoder")
	selSetComputePipelineState = objc.RegisterName("setComputePipelineState:")
	selSetBuffer               = objc.RegisterName("setBuffer:offset:atIndex:")
	selSetBytes                = objc.RegisterName("setBytes:length:atIndex:")
	selSetThreadgroupMemory    = objc.RegisterName("setThreadgroupMemoryLength:atIndex:")
	selDispatchThreadgroups    = objc.RegisterName("dispatchThreadgroups:threadsPerThreadgroup:")
	selCopyBuffer              = objc.RegisterName("copyFromBuffer:sourceOffset:toBuffer:destinationOffset:size:")
	selEndEncoding             = objc.RegisterName("endEncoding")
	selCommit                  = objc.RegisterName("commit")
	selWaitUntilCompleted      = objc.RegisterName("waitUntilCompleted")
	selStatus                  = objc.RegisterName("status")
	selError                   = objc.RegisterName("error")
)

// Classes, looked up once the frameworks that define them are loaded.
var (
	classNSString          objc.ID
	classNSProcessInfo     objc.ID
	classMTLCompileOptions objc.ID
)

// The C functions the backend calls, bound by loadMetal.
var (
	loadOnce     sync.Once
	loadErr      error
	createDevice uintptr // MTLCreateSystemDefaultDevice
	copyDevices  uintptr // MTLCopyAllDevices
	poolPush     uintptr // objc_autoreleasePoolPush
	poolPop      uintptr // objc_autoreleasePoolPop
)

// loadMetal opens the frameworks and finds the functions, once.
func loadMetal() error {
	loadOnce.Do(func() {
		if _, err := purego.Dlopen(foundationPath, purego.RTLD_NOW|purego.RTLD_GLOBAL); err != nil {
			loadErr = fmt.Errorf("metal: loading Foundation: %w", err)
			return
		}
		purego.Dlopen(coreGraphicsPath, purego.RTLD_NOW|purego.RTLD_GLOBAL) // optional
		h, err := purego.Dlopen(metalPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			loadErr = fmt.Errorf("metal: loading the Metal framework: %w", err)
			return
		}
		if createDevice, err = purego.Dlsym(h, "MTLCreateSystemDefaultDevice"); err != nil {
			loadErr = fmt.Errorf("metal: %w", err)
			return
		}
		copyDevices, _ = purego.Dlsym(h, "MTLCopyAllDevices")
		lib, err := purego.Dlopen(libobjcPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			loadErr = fmt.Errorf("metal: %w", err)
			return
		}
		if poolPush, err = purego.Dlsym(lib, "objc_autoreleasePoolPush"); err != nil {
			loadErr = fmt.Errorf("metal: %w", err)
			return
		}
		if poolPop, err = purego.Dlsym(lib, "objc_autoreleasePoolPop"); err != nil {
			loadErr = fmt.Errorf("metal: %w", err)
			return
		}
		for _, c := range []struct {
			dst  *objc.ID
			name string
		}{{&classNSString, "NSString"}, {&classNSProcessInfo, "NSProcessInfo"}, {&classMTLCompileOptions, "MTLCompileOptions"}} {
			if *c.dst = objc.ID(objc.GetClass(c.name)); *c.dst == 0 {
				loadErr = fmt.Errorf("metal: the Objective-C runtime has no class %s", c.name)
				return
			}
		}
	})
	return loadErr
}

// withPool runs f inside an autorelease pool; the caller's thread is
// locked (the executor's).
func withPool(f func() error) error {
	tok, _, _ := purego.SyscallN(poolPush)
	defer purego.SyscallN(poolPop, tok)
	return f()
}

func release(id objc.ID) {
	if id != 0 {
		id.Send(selRelease)
	}
}

// newString returns an NSString (+1: release it) holding s.
func newString(s string) objc.ID {
	return classNSString.Send(selAlloc).Send(selInitWithUTF8String, s)
}

// goString returns the text of an NSString.
func goString(s objc.ID) string {
	if s == 0 {
		return ""
	}
	p := objc.Send[*byte](s, selUTF8String)
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// errorText returns an NSError's localized description.
func errorText(e objc.ID) string {
	if e == 0 {
		return "no error description"
	}
	return goString(e.Send(selLocalizedDescription))
}

func responds(id objc.ID, sel objc.SEL) bool {
	return objc.Send[bool](id, selRespondsToSelector, sel)
}
