import DequeModule
import Synchronization

/// A bounded queue of plaintext messages for one connection, drained by that connection's writer
/// task in batches. Producers never wait: when a slow peer lets the queue fill, `enqueue` says so
/// and the caller drops that peer instead of stalling the room.
public final class OutboundQueue: Sendable {
    private struct State {
        var items: Deque<[UInt8]> = []
        var bytes = 0
        var finished = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())
    public let maxBytes: Int

    public init(maxBytes: Int = 4 << 20) {
        self.maxBytes = maxBytes
    }

    /// False when the queue is full; messages after `finish()` are ignored.
    public func enqueue(_ message: [UInt8]) -> Bool {
        let (accepted, waiter) = state.withLock { s -> (Bool, CheckedContinuation<Void, Never>?) in
            if s.finished { return (true, nil) }
            if s.bytes + message.count > maxBytes { return (false, nil) }
            s.items.append(message)
            s.bytes += message.count
            defer { s.waiter = nil }
            return (true, s.waiter)
        }
        waiter?.resume()
        return accepted
    }

    /// No more messages; the writer drains what is queued and stops.
    public func finish() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.finished = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    /// Everything queued so far, or nil once finished and drained. Cancellation finishes the queue.
    public func nextBatch() async -> [[UInt8]]? {
        while true {
            let batch = state.withLock { s -> [[UInt8]]? in
                guard !s.items.isEmpty else { return nil }
                let all = Array(s.items)
                s.items.removeAll(keepingCapacity: true)
                s.bytes = 0
                return all
            }
            if let batch { return batch }
            if state.withLock({ $0.finished }) { return nil }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let ready = state.withLock { s -> Bool in
                        if !s.items.isEmpty || s.finished { return true }
                        s.waiter = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
            } onCancel: {
                finish()
            }
        }
    }
}
