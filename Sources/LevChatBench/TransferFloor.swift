import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation

/// `levchat-bench transfer-floor`: the work a verified, sealed and durable transfer must do, and
/// nothing else, to see how much of a fetch's time is levchat-peer's own (Docs/BENCHMARKS.md,
/// "The work alone"). The sender reads 60 KiB at a time and seals it with AES-256-GCM; the
/// receiver opens each record, writes it, starts its writeback every 8 MiB, hashes it with
/// SHA-256 on a thread of its own (4 MiB may wait) and `fsync`s at the end: what a `/get` does,
/// with swift-crypto's calls, blocking sockets and no protocol, room, event loop or task.
/// Loopback only (127.0.0.1). `scripts/bench/transfer` runs it beside socat and levchat-peer.
struct TransferFloor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transfer-floor",
        abstract: "Move a file over 127.0.0.1 doing only the work of a verified, sealed, durable transfer.",
        discussion: """
            Run the receiving side first (--listen PORT --into FILE --size BYTES: it prints \
            'ready PORT', then, at the end, the bytes, seconds, its CPU seconds and the SHA-256), \
            then the sending side (--connect PORT --from FILE).
            """)

    static let recordBytes = 60 * 1024

    @Option(help: "Receive on 127.0.0.1:PORT, 0 for any free port (with --into and --size).")
    var listen: Int?

    @Option(help: "Send to 127.0.0.1:PORT (with --from).")
    var connect: Int?

    @Option(help: "The file to write (never there before: it is not overwritten).")
    var into: String?

    @Option(help: "The bytes to receive.")
    var size: Int?

    @Option(help: "The file to send.")
    var from: String?

    func validate() throws {
        switch (listen, connect) {
        case (let port?, nil):
            guard (0...65535).contains(port) else { throw ValidationError("--listen takes a port from 0 (any free one) to 65535, not \(port)") }
            guard into != nil, let size, size > 0 else { throw ValidationError("--listen needs --into FILE and --size BYTES (more than 0)") }
            guard from == nil else { throw ValidationError("--from goes with --connect, not --listen") }
        case (nil, let port?):
            guard (1...65535).contains(port) else { throw ValidationError("--connect takes a port from 1 to 65535, not \(port)") }
            guard from != nil else { throw ValidationError("--connect needs --from FILE") }
            guard into == nil, size == nil else { throw ValidationError("--into and --size go with --listen, not --connect") }
        default:
            throw ValidationError("give either --listen PORT (the receiving side) or --connect PORT (the sending side)")
        }
    }

    func run() throws {
        // A receiver that ends early is an error to say (EPIPE), not a silent death by SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        do {
            if let port = listen, let into, let size {
                let result = try Self.receive(port: port, into: into, size: size)
                say(String(format: "received %d bytes in %.3f s, CPU %.2f s, sha256 %@", result.bytes, result.seconds, result.cpu,
                           result.sha256 as NSString))
            } else if let port = connect, let from {
                try Self.send(port: port, from: from)
            }
        } catch {
            // One sentence, not a trace (as everywhere at the command line).
            FileHandle.standardError.write(Data("levchat-bench transfer-floor: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    enum FloorError: Error, CustomStringConvertible {
        case system(String, Int32)
        case shortRecord
        case ended(at: Int, of: Int)
        case crypto(String)

        var description: String {
            switch self {
            case .system(let what, let code): "\(what): \(String(cString: strerror(code)))"
            case .shortRecord: "the link ended inside a record"
            case .ended(let at, let size): "the link ended at \(at) of \(size) bytes"
            case .crypto(let why): "a record could not be opened: \(why)"
            }
        }
    }

    /// The record's nonce: its number, as the link ciphers count theirs.
    static func nonce(_ number: UInt64) -> AES.GCM.Nonce {
        var bytes = [UInt8](repeating: 0, count: 12)
        var value = number
        for i in 0..<8 {
            bytes[i] = UInt8(truncatingIfNeeded: value)
            value >>= 8
        }
        return try! AES.GCM.Nonce(data: bytes)
    }

    static let key = SymmetricKey(data: [UInt8](repeating: 7, count: 32))

    static func loopback(_ port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    static func readFully(_ fd: Int32, _ pointer: UnsafeMutableRawPointer, _ count: Int) throws -> Bool {
        var done = 0
        while done < count {
            let n = read(fd, pointer + done, count - done)
            if n == 0 { if done == 0 { return false }; throw FloorError.shortRecord }
            if n < 0 { if errno == EINTR { continue }; throw FloorError.system("read", errno) }
            done += n
        }
        return true
    }

    static func writeFully(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) throws {
        var done = 0
        while done < count {
            let n = write(fd, pointer + done, count - done)
            if n < 0 { if errno == EINTR { continue }; throw FloorError.system("write", errno) }
            done += n
        }
    }

    static func send(port: Int, from path: String) throws {
        let file = open(path, O_RDONLY)
        guard file >= 0 else { throw FloorError.system(path, errno) }
        defer { close(file) }
        var status = stat()
        fstat(file, &status)
        let size = Int(status.st_size)
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = loopback(port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw FloorError.system("connect to 127.0.0.1:\(port)", errno) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: recordBytes, alignment: 16)
        defer { buffer.deallocate() }
        var offset = 0
        var number: UInt64 = 0
        while offset < size {
            let count = min(recordBytes, size - offset)
            guard pread(file, buffer.baseAddress, count, off_t(offset)) == count else { throw FloorError.system("pread", errno) }
            let box = try AES.GCM.seal(UnsafeRawBufferPointer(rebasing: buffer[0..<count]), using: key, nonce: nonce(number))
            var header = UInt32(count + 16).bigEndian
            try writeFully(socket, &header, 4)
            try box.ciphertext.withUnsafeBytes { bytes in try writeFully(socket, bytes.baseAddress!, bytes.count) }
            try box.tag.withUnsafeBytes { bytes in try writeFully(socket, bytes.baseAddress!, bytes.count) }
            offset += count
            number += 1
        }
        // The receiver's one byte once its file is durable: the sender stays until then, as a
        // levchat-peer sender waits for the fetcher's `done`. Its end of the stream first, so a
        // receiver that expects more hears the end rather than waiting with it.
        shutdown(socket, Int32(SHUT_WR))
        var answer: UInt8 = 0
        _ = read(socket, &answer, 1)
    }

    static func receive(port: Int, into path: String, size: Int) throws -> (bytes: Int, seconds: Double, cpu: Double, sha256: String) {
        let output = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard output >= 0 else { throw FloorError.system(path, errno) }
        defer { close(output) }
        let listener = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = loopback(port)
        let isBound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard isBound == 0, Glibc.listen(listener, 1) == 0 else { throw FloorError.system("listen on 127.0.0.1:\(port)", errno) }
        var bound = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        say("ready \(UInt16(bigEndian: bound.sin_port))")
        let socket = accept(listener, nil, nil)
        guard socket >= 0 else { throw FloorError.system("accept", errno) }
        defer { close(socket) }
        let started = ContinuousClock.now
        let hashing = FloorHasher()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: recordBytes + 16, alignment: 16)
        defer { buffer.deallocate() }
        var bytes = 0, number: UInt64 = 0, writebackFrom = 0
        while bytes < size {
            var header: UInt32 = 0
            guard try readFully(socket, &header, 4) else { break }
            let count = Int(UInt32(bigEndian: header))
            guard (17...recordBytes + 16).contains(count) else { throw FloorError.crypto("a record of \(count) bytes") }
            guard try readFully(socket, buffer.baseAddress!, count) else { throw FloorError.shortRecord }
            let plain: Data
            do {
                let box = try AES.GCM.SealedBox(nonce: nonce(number), ciphertext: UnsafeRawBufferPointer(rebasing: buffer[0..<(count - 16)]),
                                                tag: UnsafeRawBufferPointer(rebasing: buffer[(count - 16)..<count]))
                plain = try AES.GCM.open(box, using: key)
            } catch {
                throw FloorError.crypto("\(error)")
            }
            try plain.withUnsafeBytes { bytes in try writeFully(output, bytes.baseAddress!, bytes.count) }
            hashing.feed(plain)
            bytes += plain.count
            number += 1
            if bytes - writebackFrom >= 8 << 20, let syncFileRange {
                _ = syncFileRange(output, Int64(writebackFrom), Int64(bytes - writebackFrom), 2)  // SYNC_FILE_RANGE_WRITE
                writebackFrom = bytes
            }
        }
        let digest = hashing.finish()
        guard bytes == size else { throw FloorError.ended(at: bytes, of: size) }
        guard fsync(output) == 0 else { throw FloorError.system("fsync", errno) }
        let elapsed = ContinuousClock.now - started
        var done: UInt8 = 1
        _ = write(socket, &done, 1)
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return (bytes, seconds, cpu, digest)
    }

    /// `sync_file_range(2)`, which Swift's Glibc module leaves out.
    static let syncFileRange: (@convention(c) (Int32, Int64, Int64, UInt32) -> Int32)? = {
        guard let symbol = dlsym(nil, "sync_file_range") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int64, Int64, UInt32) -> Int32).self)
    }()
}

/// SHA-256 on a thread of its own, at most 4 MiB waiting, taken in batches (as the peer's
/// hashing thread does).
private final class FloorHasher: @unchecked Sendable {
    // All guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [Data] = []
    private var queued = 0
    private var ended = false
    private var digest: String?
    private var hasher = SHA256()

    init() {
        Thread.detachNewThread { [self] in run() }
    }

    func feed(_ bytes: Data) {
        condition.lock()
        while queued > 4 << 20 { condition.wait() }
        queue.append(bytes)
        queued += bytes.count
        condition.broadcast()
        condition.unlock()
    }

    func finish() -> String {
        condition.lock()
        defer { condition.unlock() }
        ended = true
        condition.broadcast()
        while digest == nil { condition.wait() }
        return digest!
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !ended { condition.wait() }
            if queue.isEmpty {
                digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
                condition.broadcast()
                condition.unlock()
                return
            }
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            condition.unlock()
            for bytes in batch { hasher.update(data: bytes) }
            condition.lock()
            queued -= batch.reduce(0) { $0 + $1.count }
            condition.broadcast()
            condition.unlock()
        }
    }
}
