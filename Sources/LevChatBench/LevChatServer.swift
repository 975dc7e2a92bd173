#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LevChatCore
import LevChatTransport
import NIOCore
import Synchronization

/// The real `levchat-peer create` in its own process, so its CPU and memory are its own; members
/// speak the real handshake and records from this process.
final class LevChatServer: BenchServer {
    let label = "levchat-peer"
    let process: ServerProcess
    let code: RoomCode
    let port: Int
    private let task: Process
    private let input = Pipe()

    /// `wrapper` runs the host under another command (valgrind).
    init(binary: URL, wrapper: [String] = []) throws {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw BenchError.missing("\(binary.path) is missing: run 'swift build -c release' first")
        }
        let task = serverTask(wrapper + [binary.path, "create", "--name", "host", "--no-mdns", "--port", "0", "--bind", "127.0.0.1", "--json"])
        // Hundreds of members share this one busy process, so their heartbeats can lag behind
        // their load by seconds; the host must not take that for dead links.
        var environment = ProcessInfo.processInfo.environment
        if environment["LEVCHAT_DEAD_AFTER_MS"] == nil { environment["LEVCHAT_DEAD_AFTER_MS"] = "60000" }
        task.environment = environment
        let stdout = Pipe()
        task.standardInput = input
        task.standardOutput = stdout
        // LEVCHAT_BENCH_LOG=FILE keeps the host's diagnostics (with LEVCHAT_LOG=info, say).
        task.standardError = ProcessInfo.processInfo.environment["LEVCHAT_BENCH_LOG"].flatMap { path in
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            return FileHandle(forWritingAtPath: path)
        } ?? FileHandle.nullDevice
        try launch(task)
        self.task = task
        // The first line is the room event; after it, stdout is drained and dropped (the host's
        // user would read it; its cost is the host's).
        var line = Data()
        let handle = stdout.fileHandleForReading
        while true {
            let byte = try handle.read(upToCount: 1) ?? Data()
            if byte.isEmpty || byte == Data([0x0A]) { break }
            line.append(byte)
        }
        guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any],
              let codeText = object["code"] as? String, let port = object["port"] as? Int
        else {
            throw BenchError.server(wrapper.isEmpty ? "levchat-peer create printed no room event"
                                                    : "levchat-peer did not start under \(wrapper[0]) (printed no room event)")
        }
        code = try RoomCode(parsing: codeText)
        self.port = port
        Thread { while !handle.availableData.isEmpty {} }.start()
        let (running, stdin) = (RunningProcess(task), input.fileHandleForWriting)
        process = ServerProcess(pid: task.processIdentifier) {
            // End of input is how the host's user leaves (valgrind then writes its counts).
            try? stdin.close()
            running.waitOrKill(after: .seconds(60))
        }
    }

    func connect(_ count: Int, stats: Stats) async throws -> (members: [any BenchMember], joinMillis: [Double]) {
        let keyring = RoomKeyring(code: code)
        var members: [any BenchMember] = []
        var joins: [Double] = []
        for i in 0..<count {
            let member = LevChatMember(index: i, stats: stats)
            let start = ContinuousClock.now
            let port = self.port
            Task { try? await member.run(port: port, keyring: keyring) }
            try await member.waitUntilJoined()
            joins.append(Double((ContinuousClock.now - start).nanoseconds) / 1e6)
            members.append(member)
        }
        return (members, joins)
    }
}

/// One member: the real handshake and join, then a reader that reports what arrives. It signs
/// what it sends but skips the members' signature checks: the host's cost is what is measured
/// (Docs/BENCHMARKS.md).
final class LevChatMember: BenchMember {
    let index: Int
    let identity = PeerIdentity()
    let stats: Stats
    private let room = Mutex<RoomID?>(nil)
    private let queue = OutboundQueue(maxBytes: 64 << 20)
    private let joined = AsyncStream.makeStream(of: Void.self)
    private let nextSeq = Mutex<Int>(1)

    init(index: Int, stats: Stats) {
        self.index = index
        self.stats = stats
    }

    func run(port: Int, keyring: RoomKeyring) async throws {
        defer { joined.continuation.finish() }
        try await SecureLink.connect(to: "127.0.0.1:\(port)", keyring: keyring, connectTimeout: .seconds(30),
                                     handshakeTimeout: .seconds(120)) { link in
            room.withLock { $0 = link.roomID }
            let name = "m\(index)"
            let join = Join(node: identity.node, name: name, listenPort: 0, endpoints: [], lastSeq: 0, key: Base64.encode(identity.publicKey),
                            claim: identity.claimName(name, room: link.roomID, counter: 1),
                            proof: identity.proveLink(room: link.roomID, binding: link.binding))
            _ = queue.enqueue(WireMessage.join(join).encoded())
            let (sealer, outbound, channel) = (link.sealer, link.outbound, link.channel)
            var reader = link.reader
            await withDiscardingTaskGroup { group in
                group.addTask { try? await SecureWriter.drain(self.queue, sealer: sealer, to: outbound) }
                // Heartbeats, as real members send them: a link silent for 4 s is dropped.
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        _ = self.queue.enqueue(WireMessage.ping(Ping(lastSeq: 0)).encoded())
                    }
                }
                // Until the welcome, the link is read here; from then on a handler on the
                // channel's event loop reads it, as the host reads its members (`BenchReceiver`).
                while let message = try? await reader.next() {
                    guard case .welcome(let welcome) = message else { continue }
                    guard let grant = welcome.grant else { break }
                    reader.expectBroadcasts(BroadcastOpener(grant: grant, epoch: welcome.roster.epoch, host: welcome.roster.host))
                    let (loop, records, index, stats) = (channel.eventLoop, reader.records, index, stats)
                    let room = (grant, welcome.roster.epoch, welcome.roster.host)
                    guard let bound = try? await loop.submit({
                        let receiver = BenchReceiver(index: index, stats: stats, records: records, room: room)
                        try Transport.divert(channel, to: receiver)
                        return NIOLoopBound(receiver, eventLoop: loop)
                    }).get() else { break }
                    joined.continuation.yield()
                    // Frames NIO read before the handover, in order, before the handler's own.
                    while let frame = await reader.frameReadBeforeHandover() {
                        _ = try? await loop.submit { bound.value.readBeforeHandover(frame) }.get()
                    }
                    break
                }
                group.cancelAll()
            }
        }
    }

    /// Returns at the welcome; throws when the link ended before it.
    func waitUntilJoined() async throws {
        for await _ in joined.stream { return }
        throw BenchError.server("member m\(index) did not get into the room")
    }

    func send(_ text: String) {
        let seq = nextSeq.withLock { n -> Int in defer { n += 1 }; return n }
        guard let room = room.withLock({ $0 }) else { return }
        _ = queue.enqueue(WireMessage.chat(Chat(signedBy: identity, room: room, seq: seq, name: "m\(index)", text: text)).encoded())
    }

    func finish() { queue.finish() }
}

/// A bench member's link after its welcome, read on the channel's event loop: each record is
/// opened and reported where NIO read it, with no hop to a task per delivery, so that the
/// latency measured is the relay's more than the bench's own scheduling (Docs/BENCHMARKS.md,
/// "The bench's members read on their event loop"). The IRC members read the same way.
final class BenchReceiver: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let index: Int
    private let stats: Stats
    private var records: RecordReader
    private var room: (grant: RoomGrant, epoch: Int, host: NodeID)
    private var readOwnFrame = false
    private var context: ChannelHandlerContext?

    init(index: Int, stats: Stats, records: RecordReader, room: (grant: RoomGrant, epoch: Int, host: NodeID)) {
        self.index = index
        self.stats = stats
        self.records = records
        self.room = room
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// A frame NIO read before this handler was in place; one that comes after the handler read
    /// its own cannot be put in order, and the link ends.
    func readBeforeHandover(_ frame: ByteBuffer) {
        guard let context else { return }
        guard !readOwnFrame else { return context.close(promise: nil) }
        read(frame, context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        readOwnFrame = true
        read(unwrapInboundIn(data), context)
    }

    private func read(_ frame: ByteBuffer, _ context: ChannelHandlerContext) {
        guard let message = try? frame.withUnsafeReadableBytes({ bytes throws(LinkError) in try records.message(fromRecord: bytes) })
        else { return context.close(promise: nil) }
        switch message {
        case .rekey(let rekey):
            // Every join moves the room secret forward, as for a real member.
            if let next = room.grant.ratcheted(to: rekey.gen) {
                room.grant = next
                records.expectBroadcasts(BroadcastOpener(grant: next, epoch: room.epoch, host: room.host))
            }
        case .msg(let record):
            if let sender = Int(record.from.dropFirst()) { stats.delivered(from: sender, to: index, text: record.text[...]) }
        default:
            break
        }
    }
}
