import Synchronization

/// Tasks inside one actor waiting for its state to change, without polling: each waits while a
/// condition on the actor's state holds, re-checked whenever the actor calls `changed()`. A
/// cancelled task stops waiting. `MemberService` (the send window, leaving), `HostService` (the
/// links closing) and `RoomPeer` (a role switch) each keep one.
final class StateWaiters: Sendable {
    private let continuations = Mutex<[CheckedContinuation<Void, Never>]>([])

    /// Returns once `condition` is false (checked on the caller's actor), or the task is cancelled.
    ///
    /// `condition` reads the actor's state, so it is called only in the body, which runs on
    /// `isolation`. A closure does not inherit an `isolated` parameter's actor unless it captures
    /// it: a `condition()` inside the cancellation handler's operation, which captured nothing,
    /// ran on the global executor beside the actor changing that state (a member piping 100,000
    /// lines crashed reading its outbox while an echo shortened it). The operation captures
    /// `isolation` (and asserts it in debug builds), so from the check to the continuation being
    /// listed nothing else runs on the actor and no `changed()` can slip in between.
    func wait(while condition: () -> Bool, isolation: isolated (any Actor)? = #isolation) async {
        while condition() && !Task.isCancelled {
            await withTaskCancellationHandler {
                isolation?.assertIsolated("StateWaiters.wait must list its continuation on the waiting actor")
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    // Checked under the lock that `changed` takes, so a cancellation is never missed.
                    let cancelled = continuations.withLock { list in
                        if Task.isCancelled { return true }
                        list.append(continuation)
                        return false
                    }
                    if cancelled { continuation.resume() }
                }
            } onCancel: {
                changed()
            }
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
