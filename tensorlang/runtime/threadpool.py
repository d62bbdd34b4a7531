"""The parallel runtime: a process-wide pool of worker threads, written in LLVM IR.

Generated code runs a ``parallel`` loop by calling

    void tensorlang_parallel_launch(void (*fn)(void *ctx, int64 begin, int64 end),
                                    void *ctx, int64 extent)

which returns once ``fn`` has run over every iteration of ``[0, extent)`` exactly once, in
sub-ranges, on the calling thread and on the pool's workers. The pool is this module's LLVM
IR (``pool_ir``), compiled once per process by MCJIT (``install``: ``llvm.add_symbol`` points
the kernels' JIT at it) and, as an object file with hidden symbols, linked into every library
``Module.export_library`` writes (``object_code``). It needs only libc (glibc, Linux x86-64):
``pthread_create``, ``pthread_sigmask``, ``syscall`` (futex), ``clock_gettime``,
``sched_yield``, ``sched_getcpu``, ``sched_getaffinity``/``sched_setaffinity`` and
``__register_atfork`` (what ``pthread_atfork`` calls).

The protocol
------------
* **Ownership.** One launch at a time owns the pool: ``busy`` is taken with a
  compare-and-swap. A launch that finds the pool busy (another Python thread's kernel is
  running) runs its loop serially on its own thread: it never waits for the pool, and two
  launches never oversubscribe the cores. So do launches with one thread configured, with
  one iteration, and nested ones (codegen already emits nested parallel loops serially).
* **Job publication.** The owner splits ``[0, extent)`` into ``n`` chunks of ``chunk``
  iterations (``extent / (16 * threads)`` rounded up: one iteration per claim for small
  extents, about 16 claims per thread for big element-wise loops, so that no claim holds
  more than a sixteenth of a thread's share). It writes ``fn, ctx, extent, chunk, n`` into
  the job record, resets ``done`` to 0, and publishes the job with one atomic store of the
  64-bit ``state`` word: ``generation << 32 | unclaimed chunks`` with a new generation.
* **Claiming.** Every participant (the owner and the workers) claims chunks with a
  compare-and-swap of ``state`` from ``(g, r)`` to ``(g, r - 1)`` (``r > 0``), and only then
  reads ``fn, ctx, extent, chunk`` and runs chunk ``n - r``. A claim can only succeed while
  its job is unfinished, since the job cannot finish before the claimed chunk is done: so a
  worker never reads the record of a finished job, and a worker that read ``(g, r)`` long
  ago fails its claim when the generation has moved on (the caller's ``ctx`` lives on its
  stack and is dead once the launch returns). The generation wraps after 2**32 launches; a
  worker would have to stall between its load and its claim for exactly that many to be
  fooled.
* **Completion.** After running a chunk a participant adds 1 to ``done``. The owner claims
  until no chunk is left, then waits until ``done == n``: it waits for chunks, never for
  threads. A worker that wakes late finds ``r == 0`` and does nothing; it cannot hold up a
  launch, and the launch cannot be held up by a worker that never comes (a worker that is
  slow because it shares a core with another program just claims fewer chunks). The owner
  polls ``done`` with ``pause`` for ``PAUSE_NS``, then yields the core (``sched_yield``)
  between checks, so that a thread of ours sharing its core gets to finish.
* **Waiting for work: spin, then sleep.** An idle worker polls ``state`` with ``pause`` for
  ``PAUSE_NS`` (10 us), then with ``sched_yield`` between polls until ``SPIN_NS`` (300 us)
  have passed, then sleeps on the futex word of its own slot (``FUTEX_WAIT_PRIVATE``). The
  yielding phase costs other threads almost nothing (a thread that wants the core gets it at
  the next poll) and keeps launches that follow each other within 300 us free of system
  calls. Measured on a 2-core Zen 4 VM (``benchmarks/parallel_runtime``, figure d): a 256^3
  numpy matmul (0.2 ms) right after one of our launches takes 1.0x its time alone with
  the phases above; with workers polling with ``pause`` only, for 100 us it took 1.5x,
  for 300 us 2.5x (libgomp's spinning: 1.2x to 1.9x). A launch that must wake a sleeper
  costs about 10 us here (``FUTEX_WAKE`` of an idle virtual CPU), one that finds its
  workers polling 0.5 to 2 us (gaps up to 200 us since the previous launch). Before sleeping a worker reads the slot's wake
  sequence, sets its ``sleeping`` flag, and checks ``state`` once more; after publishing,
  the owner reads the ``sleeping`` flags of the workers the job can use and, for each
  sleeper only, bumps its sequence and calls ``FUTEX_WAKE_PRIVATE``. (Store, then load, on
  both sides, sequentially consistent: either the worker sees the job or the owner sees the
  flag; a wake that comes between the worker's read of the sequence and its wait makes the
  wait return at once.) A launch whose workers are still polling makes no system call.
* **Placement.** A worker woken onto the CPU its owner is running on (Linux places wakees
  next to their waker when no CPU is idle, e.g. while OpenBLAS's idle thread spins on the
  other core) moves off it once (``sched_setaffinity`` without that CPU, then with all of
  them again): sharing a core with the spinner instead of with its owner gives the launch
  1.5 cores instead of 1 (a 1024^3 matmul alternated with numpy's: 1.5x to 2x its time
  alone without this, 1.2x to 1.35x with it).
* **Thread count.** ``tensorlang_parallel_set_threads`` sets it for the whole process (0 or
  unset: the CPUs in this process's affinity mask, read once). The owner starts missing
  workers (up to ``MAX_WORKERS``) on its launch; workers are never stopped: with fewer
  threads configured, those past the count ignore jobs and sleep. Workers block the
  asynchronous signals (SIGINT, SIGTERM, ...), so those go to the program's own threads.
* **fork.** A child process has only the thread that forked. A ``pthread_atfork`` child
  handler (registered when the first worker starts) empties the pool in the child: no
  workers, not busy, no job, no sleepers; its next launch starts new workers. (A check of the
  pid on every launch would cost a ``getpid`` system call, about 200 ns here.) Even without it
  the child could not deadlock: the owner runs every chunk no one else claims.
* **Exported libraries.** Each library carries its own copy of the pool (hidden symbols: two
  libraries in one process do not clash). ``tl.load_module`` points a library's copy at this
  process's pool (``tensorlang_parallel_delegate``, the one exported symbol), so all kernels
  of a Python process share one set of workers and one thread count; a library loaded by a
  C program uses its own copy.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading

import llvmlite.binding as llvm

MAX_WORKERS = 511            # worker slots; the pool runs at most MAX_WORKERS + 1 threads
CHUNKS_PER_THREAD = 16       # claims per thread and launch, for extents that allow it
SPIN_NS = 300_000            # how long an idle worker polls before it sleeps (see the docstring)
PAUSE_NS = 10_000            # of which it polls with ``pause`` this long, then yields between polls

_IR = r"""
%tl.job = type { i64, ptr, ptr, i64, i64, i64 }  ; state (generation << 32 | unclaimed), fn, ctx, extent, chunk, n
%tl.slot = type { i32, i32, [14 x i32] }        ; wake sequence (the futex word), sleeping flag; 64 bytes

@tl.job = internal global %tl.job zeroinitializer, align 64
@tl.done = internal global i64 0, align 64        ; chunks completed in the current job
@tl.busy = internal global i32 0, align 64        ; 1 while a launch owns the pool
@tl.nthreads = internal global i32 0, align 64    ; the thread count (0: not chosen yet)
@tl.nworkers = internal global i32 0, align 4     ; workers started (changed by the owner only)
@tl.active = internal global i32 0, align 4       ; workers that take part in the current job
@tl.spin_ns = internal global i64 {SPIN_NS}, align 8
@tl.delegate = internal global ptr null, align 8  ; another pool's launch, to hand launches to
@tl.fork_handler = internal global i32 0, align 4
@tl.owner_cpu = internal global i32 -1, align 4    ; the CPU the owner woke workers from
@tl.slots = internal global [{MAX_WORKERS} x %tl.slot] zeroinitializer, align 64
{DSO_HANDLE}
declare i64 @syscall(i64, ...)
declare i32 @sched_yield()
declare i32 @sched_getaffinity(i32, i64, ptr)
declare i32 @sched_setaffinity(i32, i64, ptr)
declare i32 @sched_getcpu()
declare i32 @clock_gettime(i32, ptr)
declare i32 @pthread_create(ptr, ptr, ptr, ptr)
declare i32 @pthread_sigmask(i32, ptr, ptr)
declare i32 @__register_atfork(ptr, ptr, ptr, ptr)
declare void @llvm.x86.sse2.pause()
declare i64 @llvm.ctpop.i64(i64)
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)

; ---------------------------------------------------------------- small helpers

define internal i64 @tl.now_ns() {
entry:
  %ts = alloca [2 x i64], align 8
  %rc = call i32 @clock_gettime(i32 1, ptr %ts)          ; CLOCK_MONOTONIC
  %s = load i64, ptr %ts, align 8
  %pns = getelementptr [2 x i64], ptr %ts, i64 0, i64 1
  %ns = load i64, ptr %pns, align 8
  %sns = mul i64 %s, 1000000000
  %t = add i64 %sns, %ns
  ret i64 %t
}

define internal i32 @tl.backoff(i64 %t0) {             ; how to go on waiting since %t0:
entry:                                                    ; 0: pause; 1: yielded the core; 2: spin time over
  %now = call i64 @tl.now_ns()
  %elapsed = sub i64 %now, %t0
  %spin = load atomic i64, ptr @tl.spin_ns monotonic, align 8
  %over = icmp sge i64 %elapsed, %spin
  br i1 %over, label %sleep, label %early
early:
  %polite = icmp sge i64 %elapsed, {PAUSE_NS}
  br i1 %polite, label %yield, label %pause
yield:
  %y = call i32 @sched_yield()
  ret i32 1
pause:
  ret i32 0
sleep:
  ret i32 2
}

define internal i32 @tl.default_threads() {             ; CPUs in the affinity mask
entry:
  %mask = alloca [128 x i64], align 8
  call void @llvm.memset.p0.i64(ptr %mask, i8 0, i64 1024, i1 false)
  %rc = call i32 @sched_getaffinity(i32 0, i64 1024, ptr %mask)
  %ok = icmp eq i32 %rc, 0
  br i1 %ok, label %count, label %one
count:
  %i = phi i64 [ 0, %entry ], [ %i1, %count ]
  %acc = phi i64 [ 0, %entry ], [ %acc1, %count ]
  %p = getelementptr i64, ptr %mask, i64 %i
  %w = load i64, ptr %p, align 8
  %c = call i64 @llvm.ctpop.i64(i64 %w)
  %acc1 = add i64 %acc, %c
  %i1 = add i64 %i, 1
  %more = icmp ult i64 %i1, 128
  br i1 %more, label %count, label %counted
counted:
  %n = trunc i64 %acc1 to i32
  %pos = icmp sgt i32 %n, 0
  %r = select i1 %pos, i32 %n, i32 1
  ret i32 %r
one:
  ret i32 1
}

; ---------------------------------------------------------------- settings

define {VIS} i32 @tensorlang_parallel_get_threads() {
entry:
  %n = load atomic i32, ptr @tl.nthreads monotonic, align 4
  %unset = icmp eq i32 %n, 0
  br i1 %unset, label %choose, label %have
choose:
  %d = call i32 @tl.default_threads()
  %r = cmpxchg ptr @tl.nthreads, i32 0, i32 %d monotonic monotonic
  %cur = extractvalue { i32, i1 } %r, 0
  %won = extractvalue { i32, i1 } %r, 1
  %v = select i1 %won, i32 %d, i32 %cur
  ret i32 %v
have:
  ret i32 %n
}

define {VIS} void @tensorlang_parallel_set_threads(i32 %n) {
entry:
  %pos = icmp sgt i32 %n, 0
  %v = select i1 %pos, i32 %n, i32 1
  store atomic i32 %v, ptr @tl.nthreads monotonic, align 4
  ret void
}

define {VIS} void @tensorlang_parallel_set_spin_ns(i64 %ns) {
entry:
  store atomic i64 %ns, ptr @tl.spin_ns monotonic, align 8
  ret void
}

define void @tensorlang_parallel_delegate(ptr %launch) {     ; exported by libraries too
entry:
  store atomic ptr %launch, ptr @tl.delegate release, align 8
  ret void
}

; ---------------------------------------------------------------- claiming and running chunks

define internal void @tl.run_chunks() {                  ; claim and run until none is left
entry:
  %s0 = load atomic i64, ptr @tl.job acquire, align 64
  br label %loop
loop:
  %s = phi i64 [ %s0, %entry ], [ %seen, %claim ], [ %s2, %run ]
  %rem = and i64 %s, 4294967295
  %none = icmp eq i64 %rem, 0
  br i1 %none, label %out, label %claim
claim:
  %s1 = sub i64 %s, 1
  %cas = cmpxchg ptr @tl.job, i64 %s, i64 %s1 acq_rel acquire
  %seen = extractvalue { i64, i1 } %cas, 0
  %ok = extractvalue { i64, i1 } %cas, 1
  br i1 %ok, label %run, label %loop
run:                                                      ; the job cannot finish before this chunk
  %pfn = getelementptr %tl.job, ptr @tl.job, i32 0, i32 1
  %fn = load ptr, ptr %pfn, align 8
  %pctx = getelementptr %tl.job, ptr @tl.job, i32 0, i32 2
  %ctx = load ptr, ptr %pctx, align 8
  %pext = getelementptr %tl.job, ptr @tl.job, i32 0, i32 3
  %extent = load i64, ptr %pext, align 8
  %pchunk = getelementptr %tl.job, ptr @tl.job, i32 0, i32 4
  %chunk = load i64, ptr %pchunk, align 8
  %pn = getelementptr %tl.job, ptr @tl.job, i32 0, i32 5
  %n = load i64, ptr %pn, align 8
  %index = sub i64 %n, %rem
  %begin = mul i64 %index, %chunk
  %e0 = add i64 %begin, %chunk
  %short = icmp slt i64 %e0, %extent
  %end = select i1 %short, i64 %e0, i64 %extent
  call void %fn(ptr %ctx, i64 %begin, i64 %end)
  %d = atomicrmw add ptr @tl.done, i64 1 release
  %s2 = load atomic i64, ptr @tl.job acquire, align 64
  br label %loop
out:
  ret void
}

define internal i1 @tl.ready(i32 %id) {                  ; chunks to claim, and this worker takes part
entry:
  %s = load atomic i64, ptr @tl.job monotonic, align 64
  %rem = and i64 %s, 4294967295
  %has = icmp ne i64 %rem, 0
  %a = load atomic i32, ptr @tl.active monotonic, align 4
  %mine = icmp ult i32 %id, %a
  %r = and i1 %has, %mine
  ret i1 %r
}

; ---------------------------------------------------------------- workers

define internal ptr @tl.worker(ptr %arg) {
entry:
  %id64 = ptrtoint ptr %arg to i64
  %id = trunc i64 %id64 to i32
  %seqp = getelementptr [{MAX_WORKERS} x %tl.slot], ptr @tl.slots, i64 0, i64 %id64, i32 0
  %sleepp = getelementptr [{MAX_WORKERS} x %tl.slot], ptr @tl.slots, i64 0, i64 %id64, i32 1
  br label %spin
work:
  call void @tl.run_chunks()
  br label %spin
spin:                                                     ; poll for the spin time
  %t0 = call i64 @tl.now_ns()
  br label %poll
poll:
  %k = phi i32 [ 0, %spin ], [ %k1, %pause ], [ %knext, %clock ]
  %r = call i1 @tl.ready(i32 %id)
  br i1 %r, label %work, label %pause
pause:
  call void @llvm.x86.sse2.pause()
  %k1 = add i32 %k, 1
  %check = icmp uge i32 %k1, 64
  br i1 %check, label %clock, label %poll
clock:                                                    ; every 64 pauses, or after every yield
  %phase = call i32 @tl.backoff(i64 %t0)
  %yielded = icmp eq i32 %phase, 1
  %knext = select i1 %yielded, i32 64, i32 0
  %late = icmp eq i32 %phase, 2
  br i1 %late, label %sleep, label %poll
sleep:                                                    ; then sleep until woken
  %seq = load atomic i32, ptr %seqp monotonic, align 4
  store atomic i32 1, ptr %sleepp seq_cst, align 4
  fence seq_cst
  %r2 = call i1 @tl.ready(i32 %id)
  br i1 %r2, label %awake, label %wait
wait:
  %seq64 = zext i32 %seq to i64
  %rc = call i64 (i64, ...) @syscall(i64 202, ptr %seqp, i64 128, i64 %seq64, ptr null)  ; FUTEX_WAIT_PRIVATE
  br label %awake
awake:
  store atomic i32 0, ptr %sleepp monotonic, align 4
  call void @tl.leave_owner_cpu()
  br label %spin
}

define internal void @tl.leave_owner_cpu() {             ; a woken worker on its owner's CPU moves
entry:
  %owner = load atomic i32, ptr @tl.owner_cpu monotonic, align 4
  %me = call i32 @sched_getcpu()
  %same = icmp eq i32 %me, %owner
  %valid = icmp sge i32 %me, 0
  %both = and i1 %same, %valid
  br i1 %both, label %mask, label %out
mask:
  %all = alloca [128 x i64], align 8
  %others = alloca [128 x i64], align 8
  call void @llvm.memset.p0.i64(ptr %all, i8 0, i64 1024, i1 false)
  %rc = call i32 @sched_getaffinity(i32 0, i64 1024, ptr %all)
  %ok = icmp eq i32 %rc, 0
  %inrange = icmp slt i32 %me, 8192
  %go = and i1 %ok, %inrange
  br i1 %go, label %clear, label %out
clear:
  call void @llvm.memcpy.p0.p0.i64(ptr %others, ptr %all, i64 1024, i1 false)
  %me64 = zext i32 %me to i64
  %word = lshr i64 %me64, 6
  %bit = and i64 %me64, 63
  %pw = getelementptr i64, ptr %others, i64 %word
  %w = load i64, ptr %pw, align 8
  %m = shl i64 1, %bit
  %nm = xor i64 %m, -1
  %w1 = and i64 %w, %nm
  store i64 %w1, ptr %pw, align 8
  br label %any
any:                                                      ; is another CPU allowed?
  %i = phi i64 [ 0, %clear ], [ %i1, %any.next ]
  %p = getelementptr i64, ptr %others, i64 %i
  %x = load i64, ptr %p, align 8
  %nz = icmp ne i64 %x, 0
  br i1 %nz, label %move, label %any.next
any.next:
  %i1 = add i64 %i, 1
  %more = icmp ult i64 %i1, 128
  br i1 %more, label %any, label %out
move:                                                     ; migrate now, then allow every CPU again
  %r1 = call i32 @sched_setaffinity(i32 0, i64 1024, ptr %others)
  %r2 = call i32 @sched_setaffinity(i32 0, i64 1024, ptr %all)
  br label %out
out:
  ret void
}

define internal void @tl.wake(i32 %count) {              ; wake the sleepers among workers [0, count)
entry:
  br label %loop
loop:
  %i = phi i32 [ 0, %entry ], [ %i1, %next ]
  %more = icmp ult i32 %i, %count
  br i1 %more, label %check, label %out
check:
  %i64 = zext i32 %i to i64
  %sleepp = getelementptr [{MAX_WORKERS} x %tl.slot], ptr @tl.slots, i64 0, i64 %i64, i32 1
  %asleep = load atomic i32, ptr %sleepp seq_cst, align 4
  %is = icmp ne i32 %asleep, 0
  br i1 %is, label %wake, label %next
wake:
  %cpu = call i32 @sched_getcpu()
  store atomic i32 %cpu, ptr @tl.owner_cpu monotonic, align 4
  %seqp = getelementptr [{MAX_WORKERS} x %tl.slot], ptr @tl.slots, i64 0, i64 %i64, i32 0
  %old = atomicrmw add ptr %seqp, i32 1 release
  %rc = call i64 (i64, ...) @syscall(i64 202, ptr %seqp, i64 129, i64 1)   ; FUTEX_WAKE_PRIVATE
  br label %next
next:
  %i1 = add i32 %i, 1
  br label %loop
out:
  ret void
}

define internal i32 @tl.spawn(i32 %id) {                 ; start worker %id, signals blocked
entry:
  %tid = alloca i64, align 8
  %all = alloca [16 x i64], align 8
  %old = alloca [16 x i64], align 8
  call void @llvm.memset.p0.i64(ptr %all, i8 -1, i64 128, i1 false)
  ; all but the synchronous ones (SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV: bits
  ; 3-7 and 10), so that a crash in a kernel still reaches the program's handlers
  store i64 -1273, ptr %all, align 8
  %m1 = call i32 @pthread_sigmask(i32 2, ptr %all, ptr %old)      ; SIG_SETMASK
  %id64 = zext i32 %id to i64
  %arg = inttoptr i64 %id64 to ptr
  %rc = call i32 @pthread_create(ptr %tid, ptr null, ptr @tl.worker, ptr %arg)
  %m2 = call i32 @pthread_sigmask(i32 2, ptr %old, ptr null)
  ret i32 %rc
}

define internal void @tl.after_fork() {                  ; in a forked child: an empty pool
entry:
  store i32 0, ptr @tl.nworkers, align 4
  store i32 0, ptr @tl.active, align 4
  store i64 0, ptr @tl.done, align 64
  %s = load i64, ptr @tl.job, align 64
  %g = and i64 %s, -4294967296
  store i64 %g, ptr @tl.job, align 64
  call void @llvm.memset.p0.i64(ptr @tl.slots, i8 0, i64 {SLOTS_BYTES}, i1 false)
  store atomic i32 0, ptr @tl.busy release, align 4
  ret void
}

define internal i32 @tl.start_workers(i32 %want) {       ; the owner only; returns the workers usable
entry:
  %n0 = load i32, ptr @tl.nworkers, align 4
  br label %loop
loop:
  %n = phi i32 [ %n0, %entry ], [ %n1, %started ]
  %enough = icmp uge i32 %n, %want
  br i1 %enough, label %out, label %register
register:
  %reg = load i32, ptr @tl.fork_handler, align 4
  %first = icmp eq i32 %reg, 0
  br i1 %first, label %atfork, label %spawn
atfork:
  %ra = call i32 @__register_atfork(ptr null, ptr null, ptr @tl.after_fork, ptr {DSO})
  store i32 1, ptr @tl.fork_handler, align 4
  br label %spawn
spawn:
  %rc = call i32 @tl.spawn(i32 %n)
  %ok = icmp eq i32 %rc, 0
  br i1 %ok, label %started, label %out
started:
  %n1 = add i32 %n, 1
  store i32 %n1, ptr @tl.nworkers, align 4
  br label %loop
out:
  %have = phi i32 [ %n, %loop ], [ %n, %spawn ]
  %less = icmp ult i32 %have, %want
  %use = select i1 %less, i32 %have, i32 %want
  ret i32 %use
}

; ---------------------------------------------------------------- launching

define internal void @tl.wait_done(i64 %n) {             ; until all n chunks are done
entry:
  %t0 = call i64 @tl.now_ns()
  br label %poll
poll:
  %k = phi i32 [ 0, %entry ], [ %k1, %pause ], [ 0, %clock ]
  %d = load atomic i64, ptr @tl.done acquire, align 64
  %fin = icmp eq i64 %d, %n
  br i1 %fin, label %out, label %pause
pause:
  call void @llvm.x86.sse2.pause()
  %k1 = add i32 %k, 1
  %check = icmp eq i32 %k1, 64
  br i1 %check, label %clock, label %poll
clock:
  %phase = call i32 @tl.backoff(i64 %t0)
  %paused = icmp eq i32 %phase, 0
  br i1 %paused, label %poll, label %yield
yield:                                                    ; from now on, yield between checks
  %d2 = load atomic i64, ptr @tl.done acquire, align 64
  %fin2 = icmp eq i64 %d2, %n
  br i1 %fin2, label %out, label %again
again:
  %y = call i32 @sched_yield()
  br label %yield
out:
  ret void
}

define internal void @tl.run_job(ptr %fn, ptr %ctx, i64 %extent, i32 %workers) {
entry:
  store atomic i32 %workers, ptr @tl.active monotonic, align 4
  %w64 = zext i32 %workers to i64
  %threads = add i64 %w64, 1
  %target = mul i64 %threads, {CHUNKS_PER_THREAD}
  %t1 = add i64 %extent, %target
  %t2 = sub i64 %t1, 1
  %chunk = udiv i64 %t2, %target
  %c1 = add i64 %extent, %chunk
  %c2 = sub i64 %c1, 1
  %n = udiv i64 %c2, %chunk
  %pfn = getelementptr %tl.job, ptr @tl.job, i32 0, i32 1
  store ptr %fn, ptr %pfn, align 8
  %pctx = getelementptr %tl.job, ptr @tl.job, i32 0, i32 2
  store ptr %ctx, ptr %pctx, align 8
  %pext = getelementptr %tl.job, ptr @tl.job, i32 0, i32 3
  store i64 %extent, ptr %pext, align 8
  %pchunk = getelementptr %tl.job, ptr @tl.job, i32 0, i32 4
  store i64 %chunk, ptr %pchunk, align 8
  %pn = getelementptr %tl.job, ptr @tl.job, i32 0, i32 5
  store i64 %n, ptr %pn, align 8
  store atomic i64 0, ptr @tl.done monotonic, align 64
  %s = load atomic i64, ptr @tl.job monotonic, align 64
  %g = and i64 %s, -4294967296
  %g1 = add i64 %g, 4294967296
  %new = or i64 %g1, %n
  store atomic i64 %new, ptr @tl.job seq_cst, align 64          ; publish
  %n32 = trunc i64 %n to i32
  %others = sub i32 %n32, 1
  %few = icmp ult i32 %others, %workers
  %count = select i1 %few, i32 %others, i32 %workers
  call void @tl.wake(i32 %count)
  call void @tl.run_chunks()
  call void @tl.wait_done(i64 %n)
  ret void
}

define {VIS} void @tensorlang_parallel_launch(ptr %fn, ptr %ctx, i64 %extent) {
entry:
  %d = load atomic ptr, ptr @tl.delegate acquire, align 8
  %has = icmp ne ptr %d, null
  br i1 %has, label %delegated, label %own
delegated:
  tail call void %d(ptr %fn, ptr %ctx, i64 %extent)
  ret void
own:
  %empty = icmp slt i64 %extent, 1
  br i1 %empty, label %out, label %check
check:
  %t = call i32 @tensorlang_parallel_get_threads()
  %one_thread = icmp slt i32 %t, 2
  %one_iter = icmp eq i64 %extent, 1
  %small = or i1 %one_thread, %one_iter
  br i1 %small, label %serial, label %acquire
acquire:
  %cas = cmpxchg ptr @tl.busy, i32 0, i32 1 acquire monotonic
  %won = extractvalue { i32, i1 } %cas, 1
  br i1 %won, label %owned, label %serial
owned:
  %want0 = sub i32 %t, 1
  %cap = icmp ult i32 %want0, {MAX_WORKERS}
  %want = select i1 %cap, i32 %want0, i32 {MAX_WORKERS}
  %w = call i32 @tl.start_workers(i32 %want)
  %none = icmp eq i32 %w, 0
  br i1 %none, label %release, label %job
job:
  call void @tl.run_job(ptr %fn, ptr %ctx, i64 %extent, i32 %w)
  br label %release
release:
  store atomic i32 0, ptr @tl.busy release, align 4
  br i1 %none, label %serial, label %out
serial:
  call void %fn(ptr %ctx, i64 0, i64 %extent)
  br label %out
out:
  ret void
}
"""


def pool_ir(exported: bool = False, spin_ns: int | None = None) -> str:
    """The pool's LLVM IR. ``exported``: the copy linked into a shared library (hidden
    symbols except ``tensorlang_parallel_delegate``; its fork handler is registered with the
    library's ``__dso_handle``, so that unloading the library removes it)."""
    subs = {
        "{VIS}": "hidden" if exported else "",
        "{DSO_HANDLE}": "@__dso_handle = external hidden global i8" if exported else "",
        "{DSO}": "@__dso_handle" if exported else "null",
        "{MAX_WORKERS}": str(MAX_WORKERS),
        "{SLOTS_BYTES}": str(MAX_WORKERS * 64),
        "{CHUNKS_PER_THREAD}": str(CHUNKS_PER_THREAD),
        "{SPIN_NS}": str(SPIN_NS if spin_ns is None else int(spin_ns)),
        "{PAUSE_NS}": str(PAUSE_NS),
    }
    text = _IR
    for k, v in subs.items():
        text = text.replace(k, v)
    return f'target triple = "{llvm.get_process_triple()}"\n' + text


def _compile(text: str, jit: bool):
    """Parse, verify and optimise the pool's IR for any x86-64 CPU (it needs no vector
    features); returns the module and a target machine (a JIT one when ``jit``)."""
    from ..codegen.target import init_llvm
    init_llvm()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    tm = target.create_target_machine(cpu="x86-64", features="", opt=2, reloc="pic",
                                      codemodel="jitdefault" if jit else "default", jit=jit)
    mod = llvm.parse_assembly(text)
    mod.verify()
    pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=2))
    pb.getModulePassManager().run(mod, pb)
    return mod, tm


class _Pool:
    """This process's pool: the JIT-compiled IR and its entry points."""

    def __init__(self):
        spin = os.environ.get("TENSORLANG_SPIN_US")
        mod, tm = _compile(pool_ir(spin_ns=None if not spin else float(spin) * 1000), jit=True)
        self.engine = llvm.create_mcjit_compiler(mod, tm)
        self.engine.finalize_object()
        # Workers run this code until the process ends, after the interpreter has freed its
        # objects: the engine (which owns the code) must never be disposed.
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(self.engine))
        addr = self.engine.get_function_address
        self.launch_address = addr("tensorlang_parallel_launch")
        self.get_threads = ctypes.CFUNCTYPE(ctypes.c_int32)(addr("tensorlang_parallel_get_threads"))
        self.set_threads = ctypes.CFUNCTYPE(None, ctypes.c_int32)(addr("tensorlang_parallel_set_threads"))
        self.set_spin_ns = ctypes.CFUNCTYPE(None, ctypes.c_int64)(addr("tensorlang_parallel_set_spin_ns"))
        self.launch = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(
            self.launch_address)


_lock = threading.Lock()
_pool_instance: _Pool | None = None


def pool() -> _Pool:
    """This process's pool, compiled on first use."""
    global _pool_instance
    if _pool_instance is None:
        with _lock:
            if _pool_instance is None:
                _pool_instance = _Pool()
    return _pool_instance


@functools.cache
def install() -> None:
    """Compile the pool (once) and make the JIT resolve ``tensorlang_parallel_launch`` to it:
    call before a module that launches parallel loops is JIT-compiled."""
    llvm.add_symbol("tensorlang_parallel_launch", pool().launch_address)


@functools.cache
def object_code() -> bytes:
    """The pool as a position-independent object file for ``Module.export_library``."""
    mod, tm = _compile(pool_ir(exported=True), jit=False)
    return tm.emit_object(mod)


def attach(lib: ctypes.CDLL) -> None:
    """Route the parallel loops of an exported library loaded in this process to this
    process's pool (libraries written before this runtime have nothing to route)."""
    try:
        delegate = lib.tensorlang_parallel_delegate
    except AttributeError:
        return
    delegate.argtypes, delegate.restype = [ctypes.c_void_p], None
    delegate(pool().launch_address)


def set_spin_us(us: float) -> None:
    """How long idle threads poll for work before sleeping (microseconds); for experiments
    (also settable with the environment variable ``TENSORLANG_SPIN_US``)."""
    pool().set_spin_ns(int(us * 1000))
