#if canImport(Glibc)
import Glibc
#endif
import DequeModule
import Dispatch
import Synchronization

/// Where a console's output goes instead of file descriptors 1 and 2: called with the descriptor
/// and the bytes, in order.
public typealias ConsoleSink = @Sendable (Int32, [UInt8]) -> Void

/// Writes stdout and stderr on a thread of its own, in the order the lines were given, so that no
/// caller (the host's event loop included) waits on a slow terminal or a full pipe
/// (Docs/ARCHITECTURE.md, "Console output").
final class OutputWriter: Sendable {
    private enum Item {
        case bytes(Int32, [UInt8])
        /// Reached once everything before it is written.
        case marker(DispatchSemaphore)
    }

    /// What waits to be written, and whether the writer thread sleeps on `ready`: only then does
    /// a caller signal it. A busy host gives it many lines between two wake-ups, and a signal per
    /// line was a futex wake and a thread switch per line (Docs/BENCHMARKS.md, "Console output in
    /// batches").
    private struct Pending {
        var items: Deque<Item> = []
        var writerSleeps = false
    }

    private let pending = Mutex(Pending())
    private let ready = DispatchSemaphore(value: 0)
    /// Takes the bytes in place of stdout and stderr (an in-process test's transcript); it must
    /// not block.
    private let sink: ConsoleSink?

    init(sink: ConsoleSink? = nil) {
        self.sink = sink
        guard sink == nil else { return }
        OSThread.start(name: "levchat-output") { [self] in run() }
    }

    func write(_ fd: Int32, _ text: String) {
        write(fd, bytes: Array(text.utf8))
    }

    func write(_ fd: Int32, bytes: [UInt8]) {
        if let sink { return sink(fd, bytes) }
        enqueue(.bytes(fd, bytes))
    }

    /// Waits until everything given so far is written (at the end of a run).
    func flush() {
        guard sink == nil else { return }
        let done = DispatchSemaphore(value: 0)
        enqueue(.marker(done))
        done.wait()
    }

    private func enqueue(_ item: Item) {
        let wake = pending.withLock { pending in
            pending.items.append(item)
            defer { pending.writerSleeps = false }
            return pending.writerSleeps
        }
        if wake { ready.signal() }
    }

    /// Takes everything queued at once and writes each run of bytes for one descriptor with one
    /// system call, in order.
    private func run() {
        var batch = Deque<Item>()
        var bytes: [UInt8] = []
        var fd: Int32 = 1
        while true {
            let empty = pending.withLock { pending in
                swap(&batch, &pending.items)
                pending.writerSleeps = batch.isEmpty
                return batch.isEmpty
            }
            if empty {
                ready.wait()
                continue
            }
            while let item = batch.popFirst() {
                switch item {
                case .bytes(let target, let more):
                    if target != fd && !bytes.isEmpty {
                        OutputWriter.writeAll(fd, bytes)
                        bytes.removeAll(keepingCapacity: true)
                    }
                    fd = target
                    bytes += more
                case .marker(let done):
                    OutputWriter.writeAll(fd, bytes)
                    bytes.removeAll(keepingCapacity: true)
                    done.signal()
                }
            }
            OutputWriter.writeAll(fd, bytes)
            bytes.removeAll(keepingCapacity: bytes.capacity <= 1 << 16)
            // What comes in the next moment is gathered, unsignalled, for one wake-up: a busy
            // host shows a line every 0.1 ms, and a wake-up and a write for each was a fifth of
            // its CPU at 10 members. A millisecond is far below what an eye or a pipe's reader
            // notices; an idle writer still sleeps until it is signalled.
            usleep(OutputWriter.gatheringMicroseconds)
        }
    }

    static let gatheringMicroseconds: UInt32 = 1000

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var rest = bytes[...]
        while !rest.isEmpty {
            let written = rest.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            rest = rest.dropFirst(written)
        }
    }
}
