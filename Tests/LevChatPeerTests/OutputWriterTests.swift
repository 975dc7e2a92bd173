#if canImport(Glibc)
import Glibc
#endif
import Foundation
@testable import LevChatPeer
import Testing

/// The console's writer gathers what it is given and writes runs at once (Docs/ARCHITECTURE.md,
/// "Console output and the terminal"): nothing may be lost, doubled or reordered on the way,
/// whether the lines come one by one or in bursts from several threads, to one descriptor or two.
@Suite(.timeLimit(.minutes(1)))
struct OutputWriterTests {
    @Test func everyLineArrivesOnceInOrderOnItsOwnDescriptor() async throws {
        var a: [Int32] = [0, 0], b: [Int32] = [0, 0]
        #expect(pipe(&a) == 0 && pipe(&b) == 0)
        defer { for fd in a + b { close(fd) } }
        let writer = OutputWriter()
        // Two threads, each with its own descriptor, writing in bursts and one line at a time;
        // 1,500 short lines each stay well under a pipe's 64 KiB, so nothing here waits on a reader.
        await withTaskGroup(of: Void.self) { group in
            for (name, fd) in [("a", a[1]), ("b", b[1])] {
                group.addTask {
                    for n in 0..<1500 {
                        writer.write(fd, "\(name)\(n)\n")
                        if n % 100 == 99 { try? await Task.sleep(for: .milliseconds(3)) }
                    }
                }
            }
        }
        writer.flush()
        for (name, fd) in [("a", a[0]), ("b", b[0])] {
            let expected = (0..<1500).map { "\(name)\($0)\n" }.joined()
            #expect(Self.readAvailable(fd) == expected, "descriptor \(name)")
        }
    }

    /// Everything written to a pipe so far (the writer has flushed), without blocking.
    private static func readAvailable(_ fd: Int32) -> String {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            bytes += chunk[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
