import Foundation
import Synchronization

/// Knows when a child process (started by `Spawn`) has exited, from the kernel itself: a thread of
/// its own waits in `waitid` and reaps it.
///
/// Foundation's `Process`, which the tests no longer use, learns of an exit only when a socket the
/// child inherited closes, on one shared manager thread: a grandchild that inherits that socket (a
/// daemon a child started, a process spawned by another test at the same moment) hides the exit
/// for as long as it lives, and `waitUntilExit` then waits with it. Twice that held two tests'
/// threads, the test run's whole thread pool, and the run never ended (Docs/TESTING.md, "Child
/// processes in tests").
final class ChildExit: Sendable {
    private struct State {
        var status: Int32?
        /// Ended by a signal that means a crash (SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE,
        /// SIGSEGV), not by one a test sent.
        var crashed = false
        var waiters: [CheckedContinuation<Int32, Never>] = []
    }

    private let state = Mutex(State())
    private let condition = NSCondition()

    /// Starts watching the child `pid` (started by `Spawn`), and reaps it when it exits.
    init(pid: pid_t) {
        let thread = Thread { [self] in
            var info = siginfo_t()
            var result: Int32
            repeat {
                result = waitid(P_PID, id_t(pid), &info, WEXITED)
            } while result == -1 && errno == EINTR
            // The exit code, or the number of the signal that ended it.
            let status = result == 0 ? info._sifields._sigchld.si_status : -1
            let bySignal = result == 0 && (info.si_code == Int32(CLD_KILLED) || info.si_code == Int32(CLD_DUMPED))
            self.exited(status, crashed: bySignal && [SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV].contains(status))
        }
        thread.start()
    }

    var hasExited: Bool { status != nil }
    var crashed: Bool { state.withLock { $0.crashed } }
    var status: Int32? { state.withLock { $0.status } }

    /// The exit status, once the process has exited.
    func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status = state.withLock { state -> Int32? in
                if state.status == nil { state.waiters.append(continuation) }
                return state.status
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    /// The exit status, blocking the calling thread, or nil after `timeout`: only for short
    /// commands and for teardown after SIGKILL, which ends any process at once.
    @discardableResult
    func waitBlocking(timeout: TimeInterval = 60) -> Int32? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let status { return status }
            if !condition.wait(until: deadline) { return status }
        }
    }

    private func exited(_ status: Int32, crashed: Bool) {
        let waiters = state.withLock { state in
            state.status = status
            state.crashed = crashed
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: status) }
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }
}
