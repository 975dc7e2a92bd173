import Foundation
import LevChatCore
#if canImport(Glibc)
import Glibc
#endif

/// A deliberately low-level TCP client for hostile-input tests: it can send any bytes, and speaks
/// the real handshake through the core when a test needs to get past it.
final class RawClient: @unchecked Sendable {  // used by one task at a time
    let fd: Int32
    private var sealer: RecordSealer?
    private var opener: RecordOpener?
    /// The host's broadcasts, once its welcome came.
    private var broadcasts: BroadcastOpener?
    /// The room as the welcome (and each rekey since) gave it.
    private(set) var room: (grant: RoomGrant, epoch: Int, host: NodeID)?

    /// `receiveBuffer` shrinks the socket's receive buffer (before connecting), for slow-reader tests.
    /// `source` binds the local end to another loopback address (127.0.0.2, …), so a test can be
    /// a second machine as far as the host's per-address limits go.
    init(port: Int, receiveBuffer: Int32? = nil, source: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            _ = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw RawClientError.connectFailed(errno) }
        setReadTimeout(.seconds(10))
    }

    /// The other end of a connection a test's own listener accepted (a fake host).
    init(accepted fd: Int32) {
        self.fd = fd
        setReadTimeout(.seconds(10))
    }

    deinit { Glibc.close(fd) }

    func setReadTimeout(_ timeout: Duration) {
        var tv = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            offset += n
        }
    }

    /// A frame of any length (a raw client may send what no peer would).
    func sendFrame(_ payload: [UInt8]) {
        let n = UInt32(truncatingIfNeeded: payload.count)
        send([UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + payload)
    }

    /// No more bytes from us (the host sees end of stream).
    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    private func readExactly(_ count: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out[got...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            got += n
        }
        return out
    }

    /// The next frame payload; nil when the host closed (or nothing came in time).
    func readFrame() -> [UInt8]? {
        guard let header = readExactly(4) else { return nil }
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        return readExactly(length)
    }

    /// True when the host closes the connection within the timeout (reads and discards until EOF).
    func waitForClose(timeout: Duration = .seconds(10)) -> Bool {
        setReadTimeout(timeout)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    /// This client's identity (a real key, so its chats can carry real signatures).
    let identity = PeerIdentity()
    /// The room id the host proved, after a handshake.
    private(set) var roomID: RoomID?
    /// The link's channel binding, after a handshake (a fetch's proof signs it).
    private(set) var binding: [UInt8] = []
    /// The `auth` frame of the last handshake, for replay tests.
    private(set) var lastAuth: [UInt8] = []

    /// Runs the client side of the handshake with this code (or with this grant, by the room
    /// secret). `tamper` may change the `auth` frame before it is sent. Returns the host's error,
    /// or nil when the link is up.
    func handshake(code: String, grant: RoomGrant? = nil, versions: VersionRange = ProtocolVersion.range,
                   tamper: ([UInt8]) -> [UInt8] = { $0 }) throws -> WireMessage? {
        var client = ClientHandshake(credentials: RoomCredentials(code: try RoomCode(parsing: code), grant: grant), versions: versions)
        sendFrame(client.helloBytes)
        guard let challenge = readFrame() else { throw RawClientError.closed }
        let auth: [UInt8]
        do {
            auth = tamper(try client.receiveChallenge(challenge))
        } catch HandshakeError.refused(let info) {
            return .error(info)
        } catch HandshakeError.staleSecret {
            // An honest member would come back with the code; an attacker guesses a proof anyway.
            auth = tamper(WireMessage.auth(Proof(proof: Base64.encode(RandomBytes.make(32)), yb: nil)).encoded())
        }
        lastAuth = auth
        sendFrame(auth)
        guard let reply = readFrame() else { throw RawClientError.closed }
        if case .error(let info)? = try? WireMessage.decode(reply) { return .error(info) }
        do {
            let joined = try client.receiveAuthOK(reply)
            sealer = joined.ciphers.sealer
            opener = joined.ciphers.opener
            binding = joined.ciphers.binding
            roomID = joined.roomID
            return nil
        } catch HandshakeError.refused(let info) {
            return .error(info)
        }
    }

    /// Sends a hello and reads the challenge only (to learn the room id, or to replay an old
    /// `auth` into this attempt); returns the host's first answer.
    func helloOnly(code: String) throws -> WireMessage? {
        let client = ClientHandshake(credentials: RoomCredentials(code: try RoomCode(parsing: code), grant: nil))
        sendFrame(client.helloBytes)
        return readFrame().flatMap { try? WireMessage.decode($0) }
    }

    var publicKey: String { Base64.encode(identity.publicKey) }

    /// This client's `LinkProof` for the link of its last handshake (a join or resume needs it).
    func linkProof() -> String { identity.proveLink(room: roomID!, binding: binding) }

    /// The name this client joined under, and the welcome it got.
    private(set) var name = ""
    private(set) var welcome: Welcome?

    /// A chat of this client's, signed for the room it joined, under its name (or `as`).
    func signedChat(seq: Int, text: String, as signedName: String? = nil) -> WireMessage {
        .chat(Chat(signedBy: identity, room: roomID!, seq: seq, name: signedName ?? name, text: text))
    }

    /// This client's signed claim to `name` in the room it joined.
    func claim(_ name: String, counter: Int = 1) -> NameClaim {
        identity.claimName(name, room: roomID!, counter: counter)
    }

    func seal(_ message: WireMessage) throws -> [UInt8] { try sealRaw(message.encoded()) }
    func sealRaw(_ plaintext: [UInt8]) throws -> [UInt8] { try sealer!.seal(plaintext) }

    /// The next record, opened (a link record, or a broadcast once the welcome gave its key); nil
    /// when the link ends.
    func nextMessage() throws -> WireMessage? {
        guard let frame = readFrame() else { return nil }
        return try open(frame)
    }

    /// Reads and opens records until one matches (or the link ends).
    func readMessage(until match: (WireMessage) -> Bool) throws -> WireMessage? {
        while let frame = readFrame() {
            let message = try open(frame)
            if match(message) { return message }
        }
        return nil
    }

    private func open(_ record: [UInt8]) throws -> WireMessage {
        let plain: [UInt8]
        if record.first == RecordKind.broadcast.rawValue, var opener = broadcasts {
            plain = try opener.open(record)
            broadcasts = opener
        } else {
            plain = try opener!.open(record)
        }
        let message = try WireMessage.decode(plain)
        if case .welcome(let welcome) = message, let grant = welcome.grant {
            room = (grant, welcome.roster.epoch, welcome.roster.host)
            broadcasts = BroadcastOpener(grant: grant, epoch: welcome.roster.epoch, host: welcome.roster.host)
        }
        // The ratchet: each join moves the room secret forward.
        if case .rekey(let rekey) = message, let current = room, let next = current.grant.ratcheted(to: rekey.gen) {
            room = (next, current.epoch, current.host)
            broadcasts = BroadcastOpener(grant: next, epoch: current.epoch, host: current.host)
        }
        return message
    }

    func join(name: String, listenPort: Int = 0) throws -> NodeID {
        let node = identity.node
        sendFrame(try seal(.join(Join(node: node, name: name, listenPort: listenPort, endpoints: [], lastSeq: 0, key: publicKey,
                                      claim: claim(name), proof: linkProof()))))
        self.name = name
        guard case .welcome(let welcome)? = try readMessage(until: { if case .welcome = $0 { true } else { false } }) else {
            throw RawClientError.closed
        }
        self.welcome = welcome
        return node
    }
}

enum RawClientError: Error {
    case connectFailed(Int32)
    case closed
}
