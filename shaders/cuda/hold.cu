// hold: keeps the stream busy for ns nanoseconds of the device's global
// timer, so that the work the host submits meanwhile queues up behind it.
// The Timer launches it before a timed run's start event: the run is then
// timed from the start of its first kernel, not from the host's
// submission.
//
// Geometry: one block of 32 threads.
extern "C" __global__ void __launch_bounds__(32)
mlxq_kernel(unsigned long long ns) {
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    } while (t - t0 < ns);
}
