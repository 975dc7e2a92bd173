#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LevChatTransport
import NIOCore
import NIOPosix
import Synchronization

/// ngIRCd, the reference: started on 127.0.0.1 with the configuration kept in the repository
/// (scripts/bench/ngircd.conf: penalties and per-address limits off), stopped by its pid. Members
/// are minimal IRC clients in one channel; a PRIVMSG to it is what a chat line is to levchat.
final class IRCServer: BenchServer {
    let label = "ngircd"
    let process: ServerProcess
    let port: Int
    private let directory: URL

    init(binary: String, configTemplate: URL, wrapper: [String] = []) throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw BenchError.missing("\(binary) is missing: install Debian's ngircd package (apt-get install ngircd)")
        }
        guard let template = try? String(contentsOf: configTemplate, encoding: .utf8) else {
            throw BenchError.missing("cannot read the ngircd configuration \(configTemplate.path) (give --ngircd-config)")
        }
        port = try IRCServer.freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("levchat-bench-ngircd-\(getpid())-\(port)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let config = directory.appendingPathComponent("ngircd.conf")
        try template.replacingOccurrences(of: "@PORT@", with: String(port)).write(to: config, atomically: true, encoding: .utf8)
        // ngIRCd changes to user nobody when started as root; its configuration must stay readable.
        chmod(directory.path, 0o755)
        chmod(config.path, 0o644)
        // As root, ngIRCd would switch to nobody after valgrind opened its output as root and could
        // not write its counts at exit: under a wrapper, the whole of it runs as nobody instead.
        let asNobody = !wrapper.isEmpty && geteuid() == 0 ? ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] : []
        let task = serverTask(asNobody + wrapper + [binary, "-n", "-f", config.path])
        task.standardInput = FileHandle.nullDevice
        task.standardOutput = FileHandle.nullDevice
        task.standardError = FileHandle.nullDevice
        try launch(task)
        let (running, directory) = (RunningProcess(task), self.directory)
        process = ServerProcess(pid: task.processIdentifier) {
            kill(running.pid, SIGTERM)
            running.waitOrKill(after: .seconds(60))
            try? FileManager.default.removeItem(at: directory)
        }
        // Ready when it accepts a connection.
        let deadline = Date().addingTimeInterval(60)
        while !IRCServer.accepts(port) {
            guard task.isRunning, Date() < deadline else {
                process.stop()
                throw BenchError.server("ngircd did not start listening on 127.0.0.1:\(port)")
            }
            usleep(20_000)
        }
    }

    func connect(_ count: Int, stats: Stats) async throws -> (members: [any BenchMember], joinMillis: [Double]) {
        var members: [any BenchMember] = []
        var joins: [Double] = []
        for i in 0..<count {
            let start = ContinuousClock.now
            let member = try await IRCMember.connect(index: i, port: port, stats: stats)
            joins.append(Double((ContinuousClock.now - start).nanoseconds) / 1e6)
            members.append(member)
        }
        return (members, joins)
    }

    /// A port nothing listens on now (the kernel's pick, released for ngircd).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw BenchError.server("no free port on 127.0.0.1") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

/// Splits the byte stream into IRC lines (CR LF, or a lone LF).
final class IRCLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else { return .needMoreData }
        let length = newline - buffer.readerIndex
        var line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        if line.readableBytesView.last == UInt8(ascii: "\r") { line = line.getSlice(at: line.readerIndex, length: line.readableBytes - 1)! }
        context.fireChannelRead(wrapInboundOut(line))
        return .continue
    }
}

/// Hands each line to `handle` on the event loop that read it, and passes on nothing but the
/// connection's end.
final class IRCReceiver: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let handle: (ByteBuffer) -> Void

    init(_ handle: @escaping (ByteBuffer) -> Void) { self.handle = handle }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { handle(unwrapInboundIn(data)) }
}

/// A minimal IRC client: registers as m<i>, joins #bench, answers PINGs, and reports every
/// channel PRIVMSG it gets.
final class IRCMember: BenchMember {
    typealias Connection = NIOAsyncChannel<ByteBuffer, ByteBuffer>
    let index: Int
    private let queue = OutboundQueue(maxBytes: 64 << 20)

    private init(index: Int) { self.index = index }

    static func connect(index: Int, port: Int, stats: Stats) async throws -> IRCMember {
        let member = IRCMember(index: index)
        let joined = AsyncStream.makeStream(of: Void.self)
        let connection = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(IRCLineDecoder()))
                    // Lines are handled where NIO read them, as the levchat members' are
                    // (`BenchReceiver`); nothing goes on to the async channel but its end.
                    try channel.pipeline.syncOperations.addHandler(IRCReceiver { line in
                        member.handle(line, stats: stats, joined: joined.continuation)
                    })
                    return try Connection(wrappingChannelSynchronously: channel)
                }
            }
        _ = member.queue.enqueue(Array("NICK m\(index)\r\nUSER m\(index) 0 * :levchat-bench\r\n".utf8))
        Task {
            try? await connection.executeThenClose { inbound, outbound in
                await withDiscardingTaskGroup { group in
                    group.addTask {
                        while let batch = await member.queue.nextBatch() {
                            guard (try? await outbound.write(contentsOf: batch.map { ByteBuffer(bytes: $0) })) != nil else { return }
                        }
                    }
                    do {
                        for try await _ in inbound {}
                    } catch {}
                    member.queue.finish()
                    joined.continuation.finish()
                }
            }
        }
        for await _ in joined.stream { return member }
        throw BenchError.server("IRC member m\(index) did not get into #bench")
    }

    private func handle(_ line: ByteBuffer, stats: Stats, joined: AsyncStream<Void>.Continuation) {
        let text = String(buffer: line)
        if text.hasPrefix("PING ") {
            _ = queue.enqueue(Array(("PONG " + text.dropFirst(5) + "\r\n").utf8))
            return
        }
        let parts = text.split(separator: " ", maxSplits: 3)
        guard parts.count >= 2 else { return }
        switch parts[1] {
        case "PRIVMSG" where parts.count == 4:
            // :m12!~m12@localhost PRIVMSG #bench :text
            guard let bang = parts[0].firstIndex(of: "!"), let sender = Int(parts[0][parts[0].index(parts[0].startIndex, offsetBy: 2)..<bang])
            else { return }
            stats.delivered(from: sender, to: index, text: parts[3].dropFirst())
        case "001":
            _ = queue.enqueue(Array("JOIN #bench\r\n".utf8))
        case "366":
            joined.yield()
        default:
            break
        }
    }

    func send(_ text: String) {
        _ = queue.enqueue(Array("PRIVMSG #bench :\(text)\r\n".utf8))
    }

    func finish() {
        _ = queue.enqueue(Array("QUIT\r\n".utf8))
        queue.finish()
    }
}
