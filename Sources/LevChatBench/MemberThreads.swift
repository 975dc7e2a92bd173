#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix

/// How the bench's member loops are scheduled beside the server under test (Docs/BENCHMARKS.md,
/// "Where a line's millisecond goes at 50 members").
///
/// The members stand for people on other machines, but here they share the server's two cores.
/// Each write of a fan-out wakes the member loop that reads that socket, and the kernel places
/// it on the writer's core and lets it preempt the writer: a traced line at 50 members had the
/// host switched out after nearly every one of its 49 writes, so its last members waited on the
/// bench's own reading. `SCHED_BATCH` is the kernel's class for threads that should not preempt
/// on wakeup; it needs no privilege, and it is the same for both servers.
enum MemberThreads: String {
    /// The member loops run as batch threads: woken, they wait for the running thread's turn.
    case batch
    /// The member loops run as ordinary threads (the default, as every figure before 2026-12-06).
    case normal

    /// Makes each loop of the group the members connect from a batch thread. Returns how many
    /// loops the kernel does not report as batch afterwards (none on Linux, where `SCHED_BATCH`
    /// is open to every user).
    static func makeBatch(_ group: MultiThreadedEventLoopGroup = .singleton) async -> Int {
        var refused = 0
        for loop in group.makeIterator() {
            let ok = (try? await loop.submit { () -> Bool in
                var parameters = sched_param()
                parameters.sched_priority = 0
                // pid 0: the calling thread alone (Linux schedules threads, not processes).
                return sched_setscheduler(0, schedBatch, &parameters) == 0 && sched_getscheduler(0) == schedBatch
            }.get()) ?? false
            if !ok { refused += 1 }
        }
        return refused
    }

    // <sched.h>'s SCHED_BATCH, which the Glibc module leaves out without _GNU_SOURCE.
    private static let schedBatch: Int32 = 3
}
