#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
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
        guard var buffer = try await nextBuffer() else { return nil }
        return buffer.readBytes(length: buffer.readableBytes)
    }

    /// The next payload where it lies, or nil at a clean end of stream.
    public mutating func nextBuffer() async throws(LinkError) -> ByteBuffer? {
        do {
            return try await iterator.next()
        } catch let error as FrameError {
            throw .frame(error)
        } catch {
            throw .io(ConnectError.describe(error))
        }
    }
}

/// Opens and decodes the records of an authenticated connection, wherever its frames are read:
/// link records with the link's key, broadcast records (a member's link to its host) with the
/// room's broadcast key once the welcome gave it (`expectBroadcasts`). Any other kind, or a
/// broadcast before the welcome, ends the link. Synchronous, so a channel handler can use it on
/// the event loop (the host's member links: Docs/ARCHITECTURE.md, "The host's hot path").
public struct RecordReader: Sendable {
    private var opener: RecordOpener
    private var broadcasts: BroadcastOpener?

    public init(opener: RecordOpener) {
        self.opener = opener
    }

    public mutating func expectBroadcasts(_ opener: BroadcastOpener) {
        broadcasts = opener
    }

    /// One frame's record, opened and decoded.
    public mutating func message(fromRecord record: UnsafeRawBufferPointer) throws(LinkError) -> WireMessage {
        let plain: Data
        do throws(RecordError) {
            switch record.first.flatMap(RecordKind.init(rawValue:)) {
            case .link?, .linkAESGCM?: plain = try opener.openData(record)  // the opener refuses the kind not in use
            case .broadcast?:
                guard var broadcasts else { throw .unexpectedBroadcast }
                plain = try broadcasts.openData(record)
                self.broadcasts = broadcasts
            case nil: throw .unknownKind(record.first ?? 0)
            }
        } catch {
            throw .record(error)
        }
        do { return try WireMessage.decode(plain) } catch { throw .message(error) }
    }

    /// A file link's record where it lies: see `SecureReader.nextFileRecord`.
    mutating func openLinkRecord(_ record: UnsafeRawBufferPointer) throws(RecordError) -> Data {
        try opener.openData(record)
    }

    mutating func switchTo(_ cipher: LinkCipher) { opener.switchTo(cipher) }
}

/// Reads and opens the records of an authenticated connection from its `NIOAsyncChannel`
/// (`RecordReader` does the opening).
public struct SecureReader {
    private var frames: FrameReader
    /// What opens this link's records. A host hands it to its member link's channel handler, which
    /// reads the link from then on (`HostService`); this reader is then used no more.
    public private(set) var records: RecordReader

    public init(frames: FrameReader, opener: RecordOpener) {
        self.frames = frames
        records = RecordReader(opener: opener)
    }

    /// From the welcome on, the host's broadcasts of its epoch are read with this.
    public mutating func expectBroadcasts(_ opener: BroadcastOpener) {
        records.expectBroadcasts(opener)
    }

    public mutating func next() async throws(LinkError) -> WireMessage? {
        guard let buffer = try await frames.nextBuffer() else { return nil }
        return try buffer.withUnsafeReadableBytes { bytes throws(LinkError) in try records.message(fromRecord: bytes) }
    }

    /// After a link's reads were handed to a channel handler: a frame NIO had read before the
    /// handover, still unopened (only `records`, which went with the handover, opens it), or nil at
    /// the link's end.
    public mutating func frameReadBeforeHandover() async -> ByteBuffer? {
        try? await frames.nextBuffer()
    }

    /// The next link record: a file's bytes as they were opened (no copy into a message), or any
    /// other message; nil at the end. For the fetch side of a file link, which has no broadcasts.
    public mutating func nextFileRecord() async throws(LinkError) -> FileRecord? {
        guard let buffer = try await frames.nextBuffer() else { return nil }
        let opened = buffer.withUnsafeReadableBytes { bytes in
            Result { () throws(RecordError) -> Data in try records.openLinkRecord(bytes) }
        }
        let plain: Data
        do { plain = try opened.get() } catch { throw .record(error) }
        if plain.first == WireMessage.dataType { return .data(plain.dropFirst()) }
        do { return .message(try WireMessage.decode(Array(plain))) } catch { throw .message(error) }
    }

    /// The other end moved its records to `cipher` from the next one on.
    public mutating func switchTo(_ cipher: LinkCipher) { records.switchTo(cipher) }
}

/// A record of a file link (`SecureReader.nextFileRecord`).
public enum FileRecord {
    /// The bytes of a `data` message.
    case data(Data)
    case message(WireMessage)
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
                buffers.append(try Framing.sealed(plain, with: &sealer, allocator: allocator))
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

/// What this peer knows of its room: the code always, the room id and secret once it is in (or
/// from the start, for the creator). Shared by every link of the peer, across role changes.
public final class RoomKeyring: Sendable {
    public let code: RoomCode
    private let grantBox: Mutex<RoomGrant?>

    public init(code: RoomCode, grant: RoomGrant? = nil) {
        self.code = code
        grantBox = Mutex(grant)
    }

    public var grant: RoomGrant? { grantBox.withLock { $0 } }

    /// Keeps the room's grant from the first welcome, and each later generation (the ratchet's,
    /// or a fresh one); the previous one is forgotten. Another room's grant, or an older
    /// generation, is ignored. Only what a host said on an authenticated link comes here.
    public func learn(_ grant: RoomGrant) {
        grantBox.withLock { known in
            guard let current = known else { known = grant; return }
            if current.mayMove(to: grant) { known = grant }
        }
    }

    public var credentials: RoomCredentials { RoomCredentials(code: code, grant: grant) }
}

/// Failed proofs per source address, shared by the host and member roles of one peer, with a
/// callback when an address starts being refused (the host's user is told).
///
/// It also counts the handshakes under way from each address: past `maxUnfinishedPerAddress` a
/// new connection from that address is closed at once, so a flood of connections that never
/// finish (silent, garbage, half a handshake) from one machine holds at most that many descriptors
/// and tasks for the handshake timeout, and a joiner from another address is not kept waiting
/// (Docs/THREAT-MODEL.md, "Connection floods").
public final class AddressGuard: Sendable {
    public static let maxUnfinishedPerAddress = 32

    private let limiter: Mutex<FailureLimiter>
    /// The room-wide budget of code proofs checked, and the handshakes waiting their turn
    /// (Docs/THREAT-MODEL.md, "Guessing").
    private let budget: Mutex<BudgetState>
    private let onGuessing: @Sendable (Int) -> Void

    struct BudgetState {
        var budget: GuessBudget
        var waiting: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        var nextTicket: UInt64 = 0
        var timerPending = false
    }
    /// Handshakes under way per address, and the addresses already reported as flooding (until
    /// their count is back to zero).
    private let unfinished = Mutex<(counts: [String: Int], flooding: Set<String>)>(([:], []))
    private let clock: PeerClock
    private let onLimited: @Sendable (String, Duration) -> Void
    private let onFlooded: @Sendable (String) -> Void

    /// `onFlooded` is called when an address reaches the cap of unfinished handshakes (again only
    /// after all of its handshakes have ended).
    /// `onGuessing` is called with the count of wrong proofs in the last minute when the room's
    /// budget runs dry and joins start to wait (once an episode).
    public init(policy: FailureLimiter.Policy = .init(), budget: GuessBudget.Policy = .init(), clock: PeerClock = .system,
                onFlooded: @escaping @Sendable (String) -> Void = { _ in },
                onGuessing: @escaping @Sendable (Int) -> Void = { _ in },
                onLimited: @escaping @Sendable (String, Duration) -> Void) {
        self.clock = clock
        limiter = Mutex(FailureLimiter(policy: policy))
        self.budget = Mutex(BudgetState(budget: GuessBudget(policy: budget, now: clock.now().monotonic)))
        self.onLimited = onLimited
        self.onFlooded = onFlooded
        self.onGuessing = onGuessing
    }

    /// Waits until a proof of the code from `address` may be checked (at once, unless the room's
    /// budget is spent); false when `channel` closed first (the handshake deadline). A `true`
    /// must be followed by `proofChecked`.
    func turnToCheckProof(from address: String, on channel: any Channel) async -> Bool {
        let source = GuessBudget.source(of: address)
        let ticket = budget.withLock { state -> UInt64 in
            defer { state.nextTicket += 1 }
            return state.nextTicket
        }
        channel.closeFuture.whenComplete { _ in self.withdraw(ticket) }
        let granted = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) -> Void in
            let now = self.now
            let turn = budget.withLock { state -> GuessBudget.Turn in
                let turn = state.budget.request(ticket: ticket, source: source, now: now)
                if case .queued = turn { state.waiting[ticket] = continuation }
                return turn
            }
            switch turn {
            case .now: continuation.resume(returning: true)
            case .queued(let startsAttack):
                if let startsAttack { onGuessing(startsAttack) }
                dispatch()
            }
        }
        guard granted else { return false }
        guard channel.isActive else {
            proofChecked(from: address, wrong: false)
            return false
        }
        return true
    }

    /// The proof that had its turn was checked: `wrong` when it was a wrong code.
    func proofChecked(from address: String, wrong: Bool) {
        let now = self.now
        budget.withLock { $0.budget.settled(source: GuessBudget.source(of: address), wrong: wrong, now: now) }
        dispatch()
    }

    private func withdraw(_ ticket: UInt64) {
        let waiter = budget.withLock { state -> CheckedContinuation<Bool, Never>? in
            state.budget.withdraw(ticket: ticket)
            return state.waiting.removeValue(forKey: ticket)
        }
        waiter?.resume(returning: false)
    }

    /// Gives the waiters whose turn it is their turn, and sets one timer for the next token.
    private func dispatch() {
        let now = self.now
        let (released, wakeIn) = budget.withLock { state -> ([CheckedContinuation<Bool, Never>], Duration?) in
            let released = state.budget.due(now: now).compactMap { state.waiting.removeValue(forKey: $0) }
            guard !state.timerPending, let next = state.budget.nextRelease(now: now) else { return (released, nil) }
            state.timerPending = true
            return (released, next)
        }
        for waiter in released { waiter.resume(returning: true) }
        if let wakeIn {
            Task {
                try? await self.clock.sleep(for: max(wakeIn, .milliseconds(1)))
                self.budget.withLock { $0.timerPending = false }
                self.dispatch()
            }
        }
    }

    /// False when `address` already has the most handshakes under way that it may have.
    func beginHandshake(from address: String) -> Bool {
        let (accepted, newlyFlooding) = unfinished.withLock { state -> (Bool, Bool) in
            let count = state.counts[address, default: 0]
            guard count < AddressGuard.maxUnfinishedPerAddress else { return (false, false) }
            state.counts[address] = count + 1
            guard count + 1 == AddressGuard.maxUnfinishedPerAddress else { return (true, false) }
            return (true, state.flooding.insert(address).inserted)
        }
        if newlyFlooding { onFlooded(address) }
        return accepted
    }

    func endHandshake(from address: String) {
        unfinished.withLock { state in
            let count = state.counts[address, default: 1] - 1
            state.counts[address] = count > 0 ? count : nil
            if count <= 0 { state.flooding.remove(address) }
        }
    }

    private var now: Duration { clock.now().monotonic }

    func refusal(for address: String) -> Duration? {
        let now = self.now
        return limiter.withLock { $0.refusal(for: GuessBudget.source(of: address), now: now) }
    }

    /// Counted against the address, or against its /64 for IPv6.
    func recordFailure(from address: String) {
        let now = self.now
        let source = GuessBudget.source(of: address)
        if let block = limiter.withLock({ $0.recordFailure(from: source, now: now) }) { onLimited(source, block) }
    }
}

/// One authenticated connection, whichever side opened it: the handshake is done, records are
/// sealed and opened here, and one deadline mechanism closes a connection that stalls.
public struct SecureLink {
    public let channel: any Channel
    public let roomID: RoomID
    /// The peer's address as this side sees it (IPv4-mapped IPv6 unmapped).
    public let remoteHost: String
    public var reader: SecureReader
    public var sealer: RecordSealer
    public let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    /// Both ends derive it from their handshake, nobody else can (`SessionCiphers.binding`).
    public let binding: [UInt8]
    /// The clock of the link's deadlines (its network's).
    public let clock: PeerClock

    public mutating func send(_ message: WireMessage) async throws(LinkError) {
        try await send(plaintext: message.encoded())
    }

    /// Sends an encoded message (a file's `data`: `BinaryMessages.dataType` and the bytes, read
    /// straight into one buffer).
    public mutating func send(plaintext: some DataProtocol) async throws(LinkError) {
        let frame = try Framing.sealed(plaintext, with: &sealer)
        do { try await outbound.write(frame) } catch { throw .io(ConnectError.describe(error)) }
    }

    /// A file link's next record (`SecureReader.nextFileRecord`).
    public mutating func receiveFileRecord() async throws(LinkError) -> FileRecord? {
        try await reader.nextFileRecord()
    }

    public mutating func receive() async throws(LinkError) -> WireMessage? {
        try await reader.next()
    }

    /// Closes the connection if it is still open after `timeout` (a one-question exchange).
    public func closeAfter(_ timeout: Duration) -> Deadline {
        Deadline(channel: channel, after: timeout, clock: clock)
    }

    /// Host side: checks the source address against the guessing limits, runs the handshake of
    /// Docs/PROTOCOL.md within `timeout`, then `body`; the connection is closed after. Nil when the
    /// handshake failed (the peer was told why where that helps an honest peer).
    ///
    /// `redirectingCodeJoiners` (a member that is not the host): a hello with the code is answered
    /// with this `redirect` at once, in place of a challenge, and closed. No CPace runs, so no
    /// guess of the code is answered anywhere but at the host, whose budget is the room's.
    public static func accept<T>(_ connection: FramedChannel, keyring: RoomKeyring, guard addressGuard: AddressGuard?,
                                 timeout: Duration, clock: PeerClock, onFailure: (HandshakeError, String) -> Void = { _, _ in },
                                 redirectingCodeJoiners: (@Sendable () async -> Redirect)? = nil,
                                 _ body: (inout SecureLink) async -> T) async -> T? {
        let channel = connection.channel
        let remote = channel.remoteAddress?.ipAddress.map(unmapped) ?? "127.0.0.1"
        guard let grant = keyring.grant else {
            // Through executeThenClose, never by dropping it (see `Transport.serveEach`).
            try? await connection.executeThenClose { _, _ in }
            return nil
        }
        return try? await connection.executeThenClose { inbound, outbound -> T? in
            if let wait = addressGuard?.refusal(for: remote) {
                let seconds = Int((wait.components.seconds)) + 1
                try? await write(WireMessage.error(ErrorInfo(code: .limited, message:
                    "too many failed attempts from your address; try again in \(seconds) s")).encoded(), outbound)
                onFailure(.refused(ErrorInfo(code: .limited, message: "limited")), remote)
                return nil
            }
            guard addressGuard?.beginHandshake(from: remote) ?? true else { return nil }
            let deadline = Deadline(channel: channel, after: timeout, clock: clock)
            var frames = FrameReader(inbound)
            var handshake = HostHandshake(code: keyring.code, grant: grant)
            let ciphers: SessionCiphers
            do throws(HandshakeError) {
                defer { addressGuard?.endHandshake(from: remote) }
                let hello = try await nextFrame(&frames, deadline)
                if let redirectingCodeJoiners, case .hello(let asked)? = try? WireMessage.decode(hello), asked.auth == .code {
                    let answer = await redirectingCodeJoiners()
                    try await write(WireMessage.redirect(answer).encoded(), outbound)
                    throw HandshakeError.redirected(answer)
                }
                let challenge = try handshake.receiveHello(hello)
                try await write(challenge, outbound)
                let auth = try await nextFrame(&frames, deadline)
                // A proof of the code waits for the room's guessing budget; one of the room secret
                // (a member finding the next host) never does.
                let budgeted = handshake.authentication == .code && addressGuard != nil
                if budgeted, await addressGuard?.turnToCheckProof(from: remote, on: channel) == false { throw .timedOut }
                do throws(HandshakeError) {
                    let (reply, sessionCiphers) = try handshake.receiveAuth(auth)
                    if budgeted { addressGuard?.proofChecked(from: remote, wrong: false) }
                    try await write(reply, outbound)
                    ciphers = sessionCiphers
                } catch {
                    if budgeted { addressGuard?.proofChecked(from: remote, wrong: error.isFailedProof) }
                    throw error
                }
            } catch {
                deadline.cancel()
                // Counted before the reply goes out: the guesser's next attempt may follow it at once.
                if error.isFailedProof { addressGuard?.recordFailure(from: remote) }
                if let reply = error.replyBeforeClosing { try? await write(reply.encoded(), outbound) }
                onFailure(error, remote)
                return nil
            }
            deadline.cancel()
            var link = SecureLink(channel: channel, roomID: grant.roomID, remoteHost: remote,
                                  reader: SecureReader(frames: frames, opener: ciphers.opener), sealer: ciphers.sealer, outbound: outbound,
                                  binding: ciphers.binding, clock: clock)
            return await body(&link)
        } ?? nil
    }

    /// Joiner side: connects to `endpoint`, proves the code (or the room secret, when the keyring
    /// holds it), checks the host's proof, then runs `body`; the connection is closed after.
    /// `connected` is given the channel as soon as it is open, so the caller can close it to
    /// abandon the attempt (a user who leaves while the handshake is under way).
    ///
    /// A host that shows another line of the room secret (this peer missed a fresh one: it was
    /// away when someone left) is asked again at once with the code (Docs/PROTOCOL.md, "Member
    /// handshake").
    public static func connect<T>(to endpoint: String, over network: any LinkNetwork = TCPNetwork(), keyring: RoomKeyring,
                                  role: String = "member", connectTimeout: Duration, handshakeTimeout: Duration,
                                  connected: (any Channel) -> Void = { _ in },
                                  _ body: (inout SecureLink) async -> T) async throws(ConnectError) -> T {
        let credentials = keyring.credentials
        do {
            return try await connect(to: endpoint, over: network, credentials: credentials, role: role, connectTimeout: connectTimeout,
                                     handshakeTimeout: handshakeTimeout, connected: connected, body)
        } catch .handshake(.staleSecret) where credentials.grant != nil {
            return try await connect(to: endpoint, over: network, credentials: RoomCredentials(code: credentials.code, grant: nil), role: role,
                                     connectTimeout: connectTimeout, handshakeTimeout: handshakeTimeout, connected: connected, body)
        }
    }

    private static func connect<T>(to endpoint: String, over network: any LinkNetwork, credentials: RoomCredentials, role: String,
                                   connectTimeout: Duration, handshakeTimeout: Duration,
                                   connected: (any Channel) -> Void,
                                   _ body: (inout SecureLink) async -> T) async throws(ConnectError) -> T {
        guard let (host, port) = Endpoint.parse(endpoint) else { throw .unreachable(endpoint, "not a HOST:PORT address") }
        let connection = try await network.connect(host: host, port: port, timeout: connectTimeout)
        let channel = connection.channel
        connected(channel)
        let remote = unmapped(host)
        let result: Result<T, ConnectError>
        do {
            result = try await connection.executeThenClose { inbound, outbound -> Result<T, ConnectError> in
                let deadline = Deadline(channel: channel, after: handshakeTimeout, clock: network.clock)
                var frames = FrameReader(inbound)
                var handshake = ClientHandshake(credentials: credentials, role: role)
                let joined: JoinedLink
                do throws(HandshakeError) {
                    try await write(handshake.helloBytes, outbound)
                    let auth = try handshake.receiveChallenge(try await nextFrame(&frames, deadline))
                    try await write(auth, outbound)
                    joined = try handshake.receiveAuthOK(try await nextFrame(&frames, deadline))
                } catch {
                    deadline.cancel()
                    return .failure(.handshake(error))
                }
                deadline.cancel()
                var link = SecureLink(channel: channel, roomID: joined.roomID, remoteHost: remote,
                                      reader: SecureReader(frames: frames, opener: joined.ciphers.opener),
                                      sealer: joined.ciphers.sealer, outbound: outbound, binding: joined.ciphers.binding,
                                      clock: network.clock)
                return .success(await body(&link))
            }
        } catch {
            throw .handshake(.closedEarly)
        }
        return try result.get()
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
        // Handshake messages are small; one that could not be framed is a link that ends here.
        guard let frame = try? Framing.buffer(bytes) else { throw .closedEarly }
        do { try await outbound.write(frame) } catch { throw .closedEarly }
    }

    /// `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) as `10.0.0.1`.
    public static func unmapped(_ ip: String) -> String {
        ip.hasPrefix("::ffff:") && ip.contains(".") ? String(ip.dropFirst(7)) : ip
    }
}

/// Closes a channel when it is still open after a timeout: the one deadline of every link.
public struct Deadline: Sendable {
    private let firedBox = NIOLockedValueBox(false)
    private let task: ClockTimer

    init(channel: any Channel, after timeout: Duration, clock: PeerClock) {
        task = clock.schedule(in: timeout, on: channel.eventLoop) { [firedBox] in
            firedBox.withLockedValue { $0 = true }
            channel.close(promise: nil)
        }
    }

    public var fired: Bool { firedBox.withLockedValue { $0 } }

    public func cancel() { task.cancel() }
}
