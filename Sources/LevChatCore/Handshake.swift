import Crypto

public enum HandshakeRole: String, Sendable {
    case client, host
}

/// The two record ciphers of an authenticated connection, one per direction.
public struct SessionCiphers: Sendable {
    public var sealer: RecordSealer
    public var opener: RecordOpener
    /// The link's channel binding: a value both ends derive from the handshake and nobody else
    /// can, so a signature over it speaks for this link only (`FetchProof`).
    public var binding: [UInt8]
}

/// How a joiner proves itself: with the room code (CPace; every newcomer) or with the room secret
/// (a member reconnecting: resume after a host change, probe, partition heal).
public enum HandshakeAuth: String, Sendable, Codable {
    case code
    case secret
}

/// What a finished handshake gives the joiner.
public struct JoinedLink: Sendable {
    public var ciphers: SessionCiphers
    /// The room the host proved it belongs to (from its challenge).
    public var roomID: RoomID
}

/// Joiner side of the handshake (Docs/PROTOCOL.md, "Handshake"):
///
/// ```
/// joiner                                           host
///   hello {versions, role, auth:"code"}     ───────▶
///                                           ◀───────  challenge {version, rid, auth:"code", sid, ya}
///   auth {yb, proof: HMAC(Kcj, T)}          ───────▶             Ya = X25519(ya, g), g = Elligator2(H(code, CI, sid))
///                                           ◀───────  auth_ok {proof: HMAC(Kch, T)}
///   ═════════ ChaCha20-Poly1305 records, keys HKDF(ISK, T, "levchat/2/code/joiner-to-host" …) ═════════
/// ```
///
/// With `auth:"secret"` the hello and challenge carry ephemeral X25519 public keys instead, the
/// challenge a lineage tag, and the keys come from the room secret and that Diffie-Hellman in
/// place of CPace's ISK.
public struct ClientHandshake: Sendable {
    public let helloBytes: [UInt8]
    private let credentials: RoomCredentials
    private let auth: HandshakeAuth
    /// With `auth: secret`: this side's half of the link's Diffie-Hellman; its public key is the
    /// hello's nonce.
    private let ephemeral: EphemeralKey
    private var schedule: LinkKeySchedule?
    private var roomID: RoomID?

    /// Uses the room secret when the credentials hold one, the code otherwise.
    public init(credentials: RoomCredentials, role: String = "member", versions: VersionRange = ProtocolVersion.range,
                ephemeral: EphemeralKey = EphemeralKey()) {
        self.credentials = credentials
        self.ephemeral = ephemeral
        auth = credentials.grant == nil ? .code : .secret
        helloBytes = WireMessage.hello(Hello(versions: versions, role: role, auth: auth,
                                             nonce: auth == .secret ? Base64.encode(ephemeral.publicKey) : nil,
                                             gen: auth == .secret ? credentials.grant?.generation : nil)).encoded()
    }

    /// Reads the challenge; returns the `auth` frame to send.
    public mutating func receiveChallenge(_ bytes: [UInt8]) throws(HandshakeError) -> [UInt8] {
        let challenge: Challenge
        switch try HandshakeError.decode(bytes) {
        case .challenge(let c): challenge = c
        case .error(let info): throw .refused(info)
        // A member (not the host) asked with the code: it answers only where the host is.
        case .redirect(let redirect) where auth == .code: throw .redirected(redirect)
        case let other: throw .unexpected(other.typeName)
        }
        guard ProtocolVersion.range.negotiate(with: VersionRange(min: challenge.version, max: challenge.version)) != nil
        else { throw .versionMismatch(VersionRange(min: challenge.version, max: challenge.version)) }
        guard let rid = RoomID(hex: challenge.rid) else { throw .malformed("challenge has a bad room id") }
        guard challenge.auth == auth else { throw .unexpected("a challenge for \(challenge.auth.rawValue) authentication") }
        roomID = rid
        switch auth {
        case .code:
            guard let sid = challenge.sid.flatMap(Base64.decode), sid.count == 16,
                  let ya = challenge.ya.flatMap(Base64.decode), ya.count == 32
            else { throw .malformed("challenge has a bad sid or CPace share") }
            let g = CPace.generator(prs: Array(credentials.code.canonical.utf8), ci: CodeKeys.channelIdentifier(rid), sid: sid)
            let scalar = CPace.randomScalar()
            let yb: [UInt8], k: [UInt8]
            do throws(CPaceError) {
                yb = try CPace.scalarMultiply(scalar, g)
                k = try CPace.scalarMultiply(scalar, ya)
            } catch {
                throw .invalidShare
            }
            let isk = CPace.intermediateSessionKey(sid: sid, k: k, ya: ya, adA: CodeKeys.hostAD, yb: yb, adB: CodeKeys.joinerAD)
            let schedule = LinkKeySchedule(secret: isk, transcript: Transcript.hash(helloBytes, bytes, yb), label: "code")
            self.schedule = schedule
            return WireMessage.auth(Proof(proof: Base64.encode(schedule.proof(.client)), yb: Base64.encode(yb))).encoded()
        case .secret:
            guard let grant = credentials.grant, grant.roomID == rid else { throw .wrongRoom }
            guard let theirs = challenge.nonce.flatMap(Base64.decode), theirs.count == 32 else {
                throw .malformed("challenge has a bad nonce")
            }
            // The later of the two generations: this side ratchets forward if the host is ahead.
            guard let shared = grant.ratcheted(to: max(grant.generation, challenge.gen ?? 0)) else {
                throw .malformed("challenge names generation \(challenge.gen ?? 0), too far ahead")
            }
            // A host on another line of secrets (a fresh one this member missed): no proof is sent,
            // so nothing is counted against this address; the caller comes back with the code.
            guard let tag = challenge.tag.flatMap(Base64.decode),
                  constantTimeEqual(tag, SecretLineage.tag(shared, joinerShare: ephemeral.publicKey)) else {
                throw .staleSecret
            }
            let dh = try ephemeral.agree(with: theirs)
            let schedule = LinkKeySchedule(secret: shared.secret + dh, transcript: Transcript.hash(helloBytes, bytes, []), label: "secret")
            self.schedule = schedule
            return WireMessage.auth(Proof(proof: Base64.encode(schedule.proof(.client)), yb: nil)).encoded()
        }
    }

    public func receiveAuthOK(_ bytes: [UInt8]) throws(HandshakeError) -> JoinedLink {
        guard let schedule, let roomID else { throw .unexpected("auth_ok before the challenge") }
        let proof: Proof
        switch try HandshakeError.decode(bytes) {
        case .authOK(let p): proof = p
        case .error(let info): throw .refused(info)
        case let other: throw .unexpected(other.typeName)
        }
        guard let mac = Base64.decode(proof.proof), constantTimeEqual(mac, schedule.proof(.host)) else {
            throw .hostProofInvalid
        }
        return JoinedLink(ciphers: SessionCiphers(sealer: RecordSealer(key: schedule.clientToHost),
                                                  opener: RecordOpener(key: schedule.hostToClient), binding: schedule.binding),
                          roomID: roomID)
    }
}

/// Host side of the handshake. An unauthenticated connection costs the host one Elligator2 map
/// and two X25519 (CPace) or two HMACs (room secret); nothing it sends lets anyone test a guess of
/// the code offline.
public struct HostHandshake: Sendable {
    private let code: RoomCode
    private let grant: RoomGrant
    private let sid: [UInt8]
    private let scalar: [UInt8]
    private let ephemeral: EphemeralKey
    private var helloBytes: [UInt8] = []
    private var challengeBytes: [UInt8] = []
    private var ya: [UInt8] = []
    private var auth: HandshakeAuth?
    /// With `auth: secret`: the secret of the later generation, and the link's Diffie-Hellman.
    private var shared: RoomGrant?
    private var dh: [UInt8] = []

    /// A peer answers joiners only once it is in the room, so it holds the grant as well as the code.
    public init(code: RoomCode, grant: RoomGrant, sid: [UInt8] = RandomBytes.make(16), scalar: [UInt8] = CPace.randomScalar(),
                ephemeral: EphemeralKey = EphemeralKey()) {
        self.code = code
        self.grant = grant
        self.sid = sid
        self.scalar = scalar
        self.ephemeral = ephemeral
    }

    /// How the joiner chose to authenticate, once its hello was read.
    public var authentication: HandshakeAuth? { auth }

    /// Returns the challenge; a version mismatch throws, with `replyBeforeClosing` set.
    public mutating func receiveHello(_ bytes: [UInt8]) throws(HandshakeError) -> [UInt8] {
        guard case .hello(let hello) = try HandshakeError.decode(bytes) else { throw .unexpected("expected hello") }
        guard let version = ProtocolVersion.range.negotiate(with: hello.versions) else {
            throw .versionMismatch(hello.versions)
        }
        guard let auth = hello.auth else { throw .malformed("hello names no authentication") }
        self.auth = auth
        helloBytes = bytes
        let challenge: Challenge
        switch auth {
        case .code:
            let g = CPace.generator(prs: Array(code.canonical.utf8), ci: CodeKeys.channelIdentifier(grant.roomID), sid: sid)
            do throws(CPaceError) { ya = try CPace.scalarMultiply(scalar, g) } catch { throw .invalidShare }
            challenge = Challenge(version: version, rid: grant.roomID.hex, auth: .code,
                                  sid: Base64.encode(sid), ya: Base64.encode(ya), nonce: nil)
        case .secret:
            guard let theirs = hello.nonce.flatMap(Base64.decode), theirs.count == 32 else {
                throw .malformed("hello has a bad nonce")
            }
            // The later of the two generations; a member ahead of this peer makes it move forward
            // after (`HostRoom` on the member's `resume`).
            guard let shared = grant.ratcheted(to: max(grant.generation, hello.gen ?? 0)) else {
                throw .malformed("hello names generation \(hello.gen ?? 0), too far ahead")
            }
            dh = try ephemeral.agree(with: theirs)
            self.shared = shared
            challenge = Challenge(version: version, rid: grant.roomID.hex, auth: .secret, sid: nil, ya: nil,
                                  nonce: Base64.encode(ephemeral.publicKey), gen: grant.generation,
                                  tag: Base64.encode(SecretLineage.tag(shared, joinerShare: theirs)))
        }
        challengeBytes = WireMessage.challenge(challenge).encoded()
        return challengeBytes
    }

    /// Checks the joiner's proof; returns `auth_ok` and the session ciphers.
    public func receiveAuth(_ bytes: [UInt8]) throws(HandshakeError) -> (reply: [UInt8], ciphers: SessionCiphers) {
        guard let auth, !challengeBytes.isEmpty else { throw .unexpected("auth before hello") }
        guard case .auth(let proof) = try HandshakeError.decode(bytes) else { throw .unexpected("expected auth") }
        let schedule: LinkKeySchedule
        switch auth {
        case .code:
            guard let yb = proof.yb.flatMap(Base64.decode), yb.count == 32 else { throw .malformed("auth has a bad CPace share") }
            let k: [UInt8]
            do throws(CPaceError) { k = try CPace.scalarMultiply(scalar, yb) } catch { throw .invalidShare }
            let isk = CPace.intermediateSessionKey(sid: sid, k: k, ya: ya, adA: CodeKeys.hostAD, yb: yb, adB: CodeKeys.joinerAD)
            schedule = LinkKeySchedule(secret: isk, transcript: Transcript.hash(helloBytes, challengeBytes, yb), label: "code")
        case .secret:
            guard let shared else { throw .unexpected("auth before hello") }
            schedule = LinkKeySchedule(secret: shared.secret + dh, transcript: Transcript.hash(helloBytes, challengeBytes, []), label: "secret")
        }
        guard let mac = Base64.decode(proof.proof), constantTimeEqual(mac, schedule.proof(.client)) else {
            throw auth == .code ? .clientProofInvalid : .secretProofInvalid
        }
        let reply = WireMessage.authOK(Proof(proof: Base64.encode(schedule.proof(.host)), yb: nil)).encoded()
        return (reply, SessionCiphers(sealer: RecordSealer(key: schedule.hostToClient), opener: RecordOpener(key: schedule.clientToHost),
                                      binding: schedule.binding))
    }
}

/// One side's ephemeral X25519 key of a member handshake: the link keys come from the room secret
/// *and* this Diffie-Hellman, so someone who holds the secret (a member who has since left) and
/// recorded the handshake still cannot open the link, and so cannot read the fresh secret the host
/// sends over it (Docs/PROTOCOL.md, "Member handshake").
public struct EphemeralKey: Sendable {
    private let raw: [UInt8]
    /// Computed once: each use would otherwise be another scalar multiplication.
    public let publicKey: [UInt8]

    public init() { self.init(key: Curve25519.KeyAgreement.PrivateKey()) }

    /// A fixed key (tests and vectors).
    public init?(rawRepresentation: [UInt8]) {
        guard let key = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: rawRepresentation) else { return nil }
        self.init(key: key)
    }

    private init(key: Curve25519.KeyAgreement.PrivateKey) {
        raw = Array(key.rawRepresentation)
        publicKey = Array(key.publicKey.rawRepresentation)
    }

    private var key: Curve25519.KeyAgreement.PrivateKey { try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw) }

    /// X25519 with the other side's public key; a low-order key (an all-zero result) is refused.
    func agree(with theirs: [UInt8]) throws(HandshakeError) -> [UInt8] {
        guard let peer = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: theirs),
              let shared = try? key.sharedSecretFromKeyAgreement(with: peer)
        else { throw .invalidShare }
        let bytes = shared.withUnsafeBytes { Array($0) }
        guard bytes.contains(where: { $0 != 0 }) else { throw .invalidShare }
        return bytes
    }
}

/// The host's evidence, in a secret challenge, of which line of secrets it holds: 16 bytes of
/// HMAC-SHA-256 keyed with the generation's secret over `levchat/3/lineage ‖ joiner's share`.
enum SecretLineage {
    static func tag(_ grant: RoomGrant, joinerShare: [UInt8]) -> [UInt8] {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("levchat/3/lineage".utf8) + joinerShare,
                                                  using: SymmetricKey(data: grant.secret))
        return Array(Array(mac).prefix(16))
    }
}

/// The CPace inputs of this protocol: CI binds the protocol and the room id, the associated
/// data names each side's role.
enum CodeKeys {
    static func channelIdentifier(_ room: RoomID) -> [UInt8] {
        CPace.lengthValueConcatenation(Array("levchat/2".utf8), room.bytes)
    }
    static let hostAD = Array("levchat/2 host".utf8)
    static let joinerAD = Array("levchat/2 joiner".utf8)
}

/// Confirmation MACs and link keys of one handshake: everything from HKDF-SHA-256 over the shared
/// secret (CPace's ISK, or the room secret) salted with the transcript, so both are bound to this
/// connection, both nonces or shares, and the version the host picked.
struct LinkKeySchedule {
    let confirmClient: SymmetricKey
    let confirmHost: SymmetricKey
    let clientToHost: SymmetricKey
    let hostToClient: SymmetricKey
    let binding: [UInt8]
    let transcript: [UInt8]

    init(secret: [UInt8], transcript: [UInt8], label: String) {
        let ikm = SymmetricKey(data: secret)
        func key(_ name: String) -> SymmetricKey {
            HKDF<SHA256>.deriveKey(inputKeyMaterial: ikm, salt: transcript,
                                   info: Array("levchat/3/\(label)/\(name)".utf8), outputByteCount: 32)
        }
        confirmClient = key("confirm-joiner")
        confirmHost = key("confirm-host")
        clientToHost = key("joiner-to-host")
        hostToClient = key("host-to-joiner")
        binding = key("binding").withUnsafeBytes { Array($0) }
        self.transcript = transcript
    }

    func proof(_ role: HandshakeRole) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: transcript, using: role == .client ? confirmClient : confirmHost))
    }
}

enum Transcript {
    /// SHA-256 over the hello and challenge payloads (each after its 4-byte length) and the
    /// joiner's CPace share (empty for the secret handshake).
    static func hash(_ hello: [UInt8], _ challenge: [UInt8], _ share: [UInt8]) -> [UInt8] {
        var sha = SHA256()
        for part in [hello, challenge, share] {
            sha.update(data: FrameCodec.header(forPayloadLength: min(part.count, FrameCodec.maximumPayloadLength)))
            sha.update(data: part)
        }
        return Array(sha.finalize())
    }
}

public enum HandshakeError: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    case unexpected(String)
    case versionMismatch(VersionRange)
    /// The joiner's code proof is wrong: a wrong code (or another room's joiner trying this one).
    case clientProofInvalid
    /// A proof of the room secret is wrong.
    case secretProofInvalid
    case hostProofInvalid
    /// A CPace share that is a low-order point (or the result is the neutral element).
    case invalidShare
    /// The peer belongs to another room than the one whose secret we hold.
    case wrongRoom
    /// The host holds another line of the room secret than this peer (this peer missed a fresh
    /// secret, or the host is not of this room): try again with the code.
    case staleSecret
    /// Asked with the code, a member that is not the host says where the host is instead of a
    /// challenge (only the host answers guesses of the code; Docs/THREAT-MODEL.md, "Guessing").
    case redirected(Redirect)
    case refused(ErrorInfo)
    case timedOut
    /// The connection ended before the handshake finished.
    case closedEarly

    static func decode(_ bytes: [UInt8]) throws(HandshakeError) -> WireMessage {
        do { return try WireMessage.decode(bytes) } catch { throw .malformed(error.description) }
    }

    /// Whether this failure counts as a guess of the code (or of the room secret) for the limiter.
    public var isFailedProof: Bool {
        switch self {
        case .clientProofInvalid, .secretProofInvalid, .invalidShare: true
        default: false
        }
    }

    /// A failure that honest peers cause every day, not worth the host's user's attention: a
    /// joiner of another room on the LAN trying this one (or a typo), a joiner that gave up one of
    /// its parallel attempts, an address already refused for a while (said once, when it began).
    /// The host logs these at info, the rest at notice.
    public var isRoutine: Bool {
        switch self {
        case .clientProofInvalid, .closedEarly, .wrongRoom: true
        case .refused(let info): info.code == ErrorCode.limited.rawValue
        default: false
        }
    }

    /// What the host tells the peer before it closes, where telling helps an honest peer.
    public var replyBeforeClosing: WireMessage? {
        switch self {
        case .versionMismatch(let theirs):
            .error(ErrorInfo(code: .version, message:
                "this room speaks protocol version \(ProtocolVersion.minimum)-\(ProtocolVersion.maximum), you speak \(theirs.min)-\(theirs.max)"))
        case .clientProofInvalid, .invalidShare:
            .error(ErrorInfo(code: .auth, message: "wrong room code"))
        case .secretProofInvalid:
            .error(ErrorInfo(code: .auth, message: "not a member of this room"))
        default: nil
        }
    }

    public var description: String {
        switch self {
        case .malformed(let why): "malformed handshake: \(why)"
        case .unexpected(let what): "unexpected handshake message: \(what)"
        case .versionMismatch(let r): "no common protocol version (peer speaks \(r.min)-\(r.max))"
        case .clientProofInvalid: "joiner's proof is wrong (wrong room code)"
        case .secretProofInvalid: "peer could not prove it holds the room secret"
        case .hostProofInvalid: "host could not prove it knows the room code"
        case .invalidShare: "invalid CPace share (a low-order point)"
        case .wrongRoom: "the peer belongs to another room"
        case .staleSecret: "this peer's room secret is out of date (the room moved to a fresh one)"
        case .redirected(let redirect): "sent on to \(redirect.endpoints.first ?? "the next host, once there is one")"
        case .refused(let info): "refused: \(info.message)"
        case .timedOut: "handshake timed out"
        case .closedEarly: "connection closed during the handshake"
        }
    }
}
