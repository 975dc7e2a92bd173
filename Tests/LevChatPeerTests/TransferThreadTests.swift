#if canImport(Glibc)
import Glibc
#endif
import Foundation
@testable import LevChatPeer
import Testing

/// File transfers run on `TransferThread`, below the chat (Docs/ARCHITECTURE.md, "Files"): work
/// that prefers it runs on that one thread at nice 10, and stays there across suspensions (so a
/// transfer blocked in a disk call holds no thread of the shared pool), while the tasks that carry
/// the chat keep the ordinary priority.
struct TransferThreadTests {
    /// The calling thread's nice value (per thread on Linux).
    private static func niceness() -> Int32 {
        errno = 0
        return getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
    }

    private static func threadID() -> pthread_t { pthread_self() }

    @Test func transferWorkRunsOnItsOwnLowerThreadAcrossSuspensions() async throws {
        let ordinary = Self.niceness()
        let seen = await Task(executorPreference: TransferThread.shared) { () -> [(pthread_t, Int32)] in
            var seen = [(Self.threadID(), Self.niceness())]
            for _ in 0..<20 {
                await Task.yield()
                try? await Task.sleep(for: .milliseconds(1))
                seen.append((Self.threadID(), Self.niceness()))
            }
            return seen
        }.value
        #expect(Set(seen.map(\.0)).count == 1, "the transfer hopped threads: \(seen.map(\.0))")
        #expect(seen.allSatisfy { $0.1 == TransferThread.niceness }, "\(seen.map(\.1))")
        #expect(ordinary != TransferThread.niceness)
        // Not one of the threads the rest of the peer's tasks run on.
        let elsewhere = await Task.detached { (Self.threadID(), Self.niceness()) }.value
        #expect(elsewhere.0 != seen[0].0 && elsewhere.1 == ordinary)
    }

    /// Blocking file work beside the transfers (an `fsync`, a folder, hashing a file to offer it)
    /// runs on threads of its own at the same nice value.
    @Test func blockingFileWorkRunsBelowTheChatToo() async throws {
        let offThread = await FileDesk.offThread { (Self.threadID(), Self.niceness()) }
        #expect(offThread.1 == TransferThread.niceness)
        #expect(offThread.0 != pthread_self())
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("levchat-transfer-thread-\(getpid())").path
        defer { unlink(path) }
        try Data("abc".utf8).write(to: URL(fileURLWithPath: path))
        // SHA-256("abc"), FIPS 180-2's first example: the hashing thread still hashes.
        let hashed = await FileDesk.hash(path)
        #expect(hashed?.size == 3 && hashed?.sizeOnDisk == 3 && hashed?.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
