#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LevChatCore

/// A fetch's SHA-256 on a thread of its own, fed the bytes in order as they are written: the
/// hash is a third of what receiving costs (Docs/BENCHMARKS.md, "Files"), and here it runs beside
/// the opening and writing of the next records instead of after them. At most `bufferBytes`
/// wait; `feed` suspends (never blocks) while that many do.
final class HashingThread: @unchecked Sendable {
    static let bufferBytes = 4 << 20

    /// The thread's own (touched by nobody else once it runs).
    private var hasher: FileHasher

    // Everything below is guarded by `condition`.
    private let condition = ThreadCondition()
    private var queue: [Data] = []
    private var queuedBytes = 0
    private var ended = false
    private var waitingForRoom: CheckedContinuation<Void, Never>?
    private var waitingForDigest: CheckedContinuation<String, Never>?
    private var digest: String?

    /// Starts the thread; `hasher` holds what came before (a resumed part's bytes).
    init(continuing hasher: FileHasher) {
        self.hasher = hasher
        OSThread.start(name: "levchat-hash") { [self] in run() }
    }

    func feed(_ bytes: Data) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            condition.lock()
            queue.append(bytes)
            queuedBytes += bytes.count
            condition.signal()
            if queuedBytes > HashingThread.bufferBytes {
                waitingForRoom = continuation
                condition.unlock()
            } else {
                condition.unlock()
                continuation.resume()
            }
        }
    }

    /// The hex digest of everything fed; the thread ends.
    func finish() async -> String {
        await withCheckedContinuation { continuation in
            condition.lock()
            ended = true
            if let digest {
                condition.unlock()
                continuation.resume(returning: digest)
                return
            }
            waitingForDigest = continuation
            condition.signal()
            condition.unlock()
        }
    }

    private func run() {
        // Below the chat, level with the rest of the transfer (`TransferThread`): at nice 19 it
        // got only what the transfer's own thread left, and the whole fetch waited on it.
        TransferThread.lowerThisThread()
        while true {
            condition.lock()
            while queue.isEmpty && !ended { condition.wait() }
            if queue.isEmpty {
                let hex = hasher.hex()
                digest = hex
                let waiter = waitingForDigest
                condition.unlock()
                waiter?.resume(returning: hex)
                return
            }
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            condition.unlock()
            for bytes in batch { bytes.withUnsafeBytes { hasher.update($0) } }
            condition.lock()
            queuedBytes -= batch.reduce(0) { $0 + $1.count }
            let waiter = queuedBytes <= HashingThread.bufferBytes ? waitingForRoom : nil
            if waiter != nil { waitingForRoom = nil }
            condition.unlock()
            waiter?.resume()
        }
    }
}
