import LevChatCore
import NIOCore
import NIOConcurrencyHelpers
import Synchronization

/// Reads whole frame payloads from a framed connection.
public struct FrameReader {
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator

    public init(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>) {
        iterator = inbound.makeAsyncIterator()
    }

    /// The next payload, or nil at a clean end of stream.
    public mutating func next() async throws(LinkError) -> [UInt8]? {
        do {
            guard var buffer = try await iterator.next() else { return nil }
            return buffer.readBytes(length: buffer.readableBytes)
        } catch let error as FrameError {
            throw .frame(error)
        } catch {
            throw .io(ConnectError.describe(error))
        }
    }
}

/// Reads and opens the encrypted records of an authenticated connection.
public struct SecureReader {
    private var frames: FrameReader
    private var opener: RecordOpener

    public init(frames: FrameReader, opener: RecordOpener) {
        self.frames = frames
        self.opener = opener
    }

    public mutating func next() async throws(LinkError) -> WireMessage? {
        guard let record = try await frames.next() else { return nil }
        let plain: [UInt8]
        do { plain = try opener.open(record) } catch { throw .record(error) }
        do { return try WireMessage.decode(plain) } catch { throw .message(error) }
    }
}

/// Seals queued plaintexts in order and writes them, one batch per wake-up.
public enum SecureWriter {
    public static func drain(_ queue: OutboundQueue, sealer: RecordSealer,
                             to outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws {
        var sealer = sealer
        let allocator = ByteBufferAllocator()
        while let batch = await queue.nextBatch() {
            var buffers: [ByteBuffer] = []
            buffers.reserveCapacity(batch.count)
            for plain in batch {
                buffers.append(allocator.buffer(bytes: try sealer.seal(plain)))
            }
            try await outbound.write(contentsOf: buffers)
        }
    }
}

public enum LinkError: Error, Equatable, CustomStringConvertible {
    case frame(FrameError)
    case record(RecordError)
    case message(MessageError)
    case io(String)

    public var description: String {
        switch self {
        case .frame(let e): e.description
        case .record(let e): e.description
        case .message(let e): e.description
        case .io(let why): why
        }
    }
}

/// Derives the room keys for one code, once per distinct salt (scrypt is deliberately slow).
public final class RoomKeyring: Sendable {
    public let code: RoomCode
    public let minimumCost: KDFCost
    private let cache = Mutex<[[UInt8]: RoomKeys]>([:])

    public init(code: RoomCode, minimumCost: KDFCost) {
        self.code = code
        self.minimumCost = minimumCost
    }

    /// Keys derived elsewhere (by the room's creator) for this code.
    public func remember(_ keys: RoomKeys) {
        cache.withLock { $0[keys.salt] = keys }
    }

    public func cachedKeys(salt: [UInt8], cost: KDFCost) -> RoomKeys? {
        cache.withLock { $0[salt] }.flatMap { $0.cost == cost ? $0 : nil }
    }

    public func keys(salt: [UInt8], cost: KDFCost) throws -> RoomKeys {
        if let known = cachedKeys(salt: salt, cost: cost) { return known }
        let keys = try RoomKeys(code: code, salt: salt, cost: cost)
        cache.withLock { $0[salt] = keys }
        return keys
    }
}

/// Runs the handshake of DESIGN §4 over a framed connection (see `ClientHandshake`).
public enum SecureHandshake {
    /// Host side. On failure the peer is told why where that helps an honest peer, then the caller
    /// closes. The connection is closed by the deadline if the peer stalls.
    public static func accept(frames: inout FrameReader, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
                              channel: any Channel, keys: RoomKeys, timeout: Duration) async throws(HandshakeError) -> SessionCiphers {
        let deadline = Deadline(channel: channel, after: timeout)
        defer { deadline.cancel() }
        var handshake = HostHandshake(keys: keys)
        do throws(HandshakeError) {
            let challenge = try handshake.receiveHello(try await nextFrame(&frames, deadline))
            try await write(challenge, outbound)
            let (reply, ciphers) = try handshake.receiveAuth(try await nextFrame(&frames, deadline))
            try await write(reply, outbound)
            return ciphers
        } catch {
            if let reply = error.replyBeforeClosing { try? await write(reply.encoded(), outbound) }
            throw error
        }
    }

    /// Joiner side: proves the code and checks the host's proof. Returns the room keys too, so the
    /// joiner can authenticate others with them later.
    public static func join(frames: inout FrameReader, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
                            channel: any Channel, keyring: RoomKeyring, role: String = "member",
                            timeout: Duration) async throws(ConnectError) -> (ciphers: SessionCiphers, keys: RoomKeys) {
        let deadline = Deadline(channel: channel, after: timeout)
        defer { deadline.cancel() }
        var handshake = ClientHandshake(role: role)
        do throws(HandshakeError) {
            try await write(handshake.helloBytes, outbound)
            let parameters = try handshake.receiveChallenge(try await nextFrame(&frames, deadline), minimumCost: keyring.minimumCost)
            let keys: RoomKeys
            do { keys = try keyring.keys(salt: parameters.salt, cost: parameters.cost) } catch {
                throw HandshakeError.malformed("key derivation failed: \(error)")
            }
            try await write(handshake.prove(with: keys), outbound)
            return (try handshake.receiveAuthOK(try await nextFrame(&frames, deadline)), keys)
        } catch let error {
            throw .handshake(error)
        }
    }

    private static func nextFrame(_ frames: inout FrameReader, _ deadline: Deadline) async throws(HandshakeError) -> [UInt8] {
        let frame: [UInt8]?
        do { frame = try await frames.next() } catch {
            throw deadline.fired ? .timedOut : .malformed(error.description)
        }
        guard let frame else { throw deadline.fired ? .timedOut : .closedEarly }
        return frame
    }

    private static func write(_ bytes: [UInt8], _ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws(HandshakeError) {
        do { try await outbound.write(ByteBuffer(bytes: bytes)) } catch { throw .closedEarly }
    }
}

/// Closes a channel when a handshake takes too long.
struct Deadline: Sendable {
    private let firedBox = NIOLockedValueBox(false)
    private let task: Scheduled<Void>

    init(channel: any Channel, after timeout: Duration) {
        task = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) { [firedBox] in
            firedBox.withLockedValue { $0 = true }
            channel.close(promise: nil)
        }
    }

    var fired: Bool { firedBox.withLockedValue { $0 } }

    func cancel() { task.cancel() }
}
