import Synchronization

/// Tasks inside one actor waiting for its state to change, without polling: each waits while a
/// condition on the actor's state holds, re-checked whenever the actor calls `changed()`. A
/// cancelled task stops waiting. `MemberService` (the send window, leaving), `HostService` (the
/// links closing) and `RoomPeer` (a role switch) each keep one.
final class StateWaiters: Sendable {
    private let continuations = Mutex<[CheckedContinuation<Void, Never>]>([])

    /// Returns once `condition` is false (checked on the caller's actor), or the task is cancelled.
    func wait(while condition: () -> Bool, isolation: isolated (any Actor)? = #isolation) async {
        await withTaskCancellationHandler {
            while condition() && !Task.isCancelled {
                await withCheckedContinuation { continuation in
                    // Checked under the lock that `changed` takes, so a cancellation is never missed.
                    let cancelled = continuations.withLock { list in
                        if Task.isCancelled { return true }
                        list.append(continuation)
                        return false
                    }
                    if cancelled { continuation.resume() }
                }
            }
        } onCancel: {
            changed()
        }
    }

    /// The state changed: every waiter checks its condition again.
    func changed() {
        let woken = continuations.withLock { list in
            defer { list = [] }
            return list
        }
        for continuation in woken { continuation.resume() }
    }
}
