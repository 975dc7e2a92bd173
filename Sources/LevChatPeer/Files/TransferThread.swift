#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The one thread file transfers run on (`Task(executorPreference:)`), below the chat
/// (Docs/ARCHITECTURE.md, "Files"). A transfer's task reads, seals, opens and writes the disk in a
/// loop; on Swift's shared pool it took the same threads, at the same priority, as the tasks that
/// carry the chat, and a disk that blocks in `write` blocked one of them. Here it runs at nice 10,
/// so a chat thread that wakes goes first, and blocking disk calls block only transfers.
final class TransferThread: TaskExecutor, @unchecked Sendable {
    static let shared = TransferThread()
    /// The thread's nice value; the receiver's `HashingThread` takes the same.
    static let niceness: Int32 = 10

    // Guarded by `condition`.
    private let condition = ThreadCondition()
    private var jobs: [UnownedJob] = []
    /// Jobs taken, and jobs finished: the in-process tests' driver counts a transfer still
    /// working here as the room's activity, so their virtual time does not pass under it.
    private let taken = Atomic<UInt64>(0)
    private let finished = Atomic<UInt64>(0)

    /// Changes whenever a job is queued or run; equal readings a while apart mean nothing ran
    /// here in between.
    var activity: UInt64 { taken.load(ordering: .acquiring) &+ finished.load(ordering: .acquiring) }
    /// Work queued or running.
    var isBusy: Bool { taken.load(ordering: .acquiring) != finished.load(ordering: .acquiring) }

    private init() {
        OSThread.start(name: "levchat-files") { [self] in run() }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        taken.add(1, ordering: .releasing)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func run() {
        TransferThread.lowerThisThread()
        var batch: [UnownedJob] = []
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            swap(&batch, &jobs)
            condition.unlock()
            for job in batch {
                job.runSynchronously(on: asUnownedTaskExecutor())
                finished.add(1, ordering: .releasing)
            }
            batch.removeAll(keepingCapacity: true)
        }
    }

    /// Nice 10 for the calling thread alone (on Linux the nice value is per thread, and 0 is the
    /// calling one).
    static func lowerThisThread() {
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
    }
}
