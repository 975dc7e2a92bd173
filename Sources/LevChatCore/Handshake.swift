import Crypto

public enum HandshakeRole: String, Sendable {
    case client, host
}

/// The two record ciphers of an authenticated connection, one per direction.
public struct SessionCiphers: Sendable {
    public var sealer: RecordSealer
    public var opener: RecordOpener
}

/// What a joiner learns from the challenge: enough to derive (or look up) the room keys.
public struct ChallengeParameters: Hashable, Sendable {
    public var version: Int
    public var salt: [UInt8]
    public var cost: KDFCost
}

/// Joiner side of the handshake (DESIGN §4):
///
/// ```
/// client                                   host
///   hello {versions, nonce, role}  ───────▶
///                                  ◀───────  challenge {version, nonce, salt, kdf}
///   auth {HMAC(authKey, "client", T)} ────▶             T = SHA-256(len‖hello‖len‖challenge)
///                                  ◀───────  auth_ok {HMAC(authKey, "host", T)}
///   ═══════════ ChaCha20-Poly1305 records, keys HKDF(K, T, "c2s" / "s2c") ═══════════
/// ```
public struct ClientHandshake: Sendable {
    public let helloBytes: [UInt8]
    private var challengeBytes: [UInt8] = []
    private var keys: RoomKeys?

    public init(role: String = "member", versions: VersionRange = ProtocolVersion.range, nonce: [UInt8] = randomNonce()) {
        helloBytes = WireMessage.hello(Hello(versions: versions, nonce: Base64.encode(nonce), role: role)).encoded()
    }

    public mutating func receiveChallenge(_ bytes: [UInt8], minimumCost: KDFCost) throws(HandshakeError) -> ChallengeParameters {
        let challenge: Challenge
        switch try HandshakeError.decode(bytes) {
        case .challenge(let c): challenge = c
        case .error(let info): throw .refused(info)
        case let other: throw .unexpected(other.typeName)
        }
        guard let salt = Base64.decode(challenge.salt), salt.count == RoomKeys.saltLength,
              let nonce = Base64.decode(challenge.nonce), nonce.count == 32
        else { throw .malformed("challenge has a bad salt or nonce") }
        guard challenge.kdf.isAcceptableFromHost, challenge.kdf.logN >= minimumCost.logN else {
            throw .weakKeyDerivation(challenge.kdf)
        }
        guard ProtocolVersion.range.negotiate(with: VersionRange(min: challenge.version, max: challenge.version)) != nil
        else { throw .versionMismatch(VersionRange(min: challenge.version, max: challenge.version)) }
        challengeBytes = bytes
        return ChallengeParameters(version: challenge.version, salt: salt, cost: challenge.kdf)
    }

    /// The `auth` frame, once the caller has the keys for the challenge's salt.
    public mutating func prove(with keys: RoomKeys) -> [UInt8] {
        self.keys = keys
        let transcript = Transcript.hash(helloBytes, challengeBytes)
        return WireMessage.auth(Proof(proof: Base64.encode(keys.proof(role: .client, transcript: transcript)))).encoded()
    }

    public func receiveAuthOK(_ bytes: [UInt8]) throws(HandshakeError) -> SessionCiphers {
        guard let keys else { throw .unexpected("auth_ok before auth") }
        let proof: Proof
        switch try HandshakeError.decode(bytes) {
        case .authOK(let p): proof = p
        case .error(let info): throw .refused(info)
        case let other: throw .unexpected(other.typeName)
        }
        let transcript = Transcript.hash(helloBytes, challengeBytes)
        guard let mac = Base64.decode(proof.proof), keys.verify(proof: mac, role: .host, transcript: transcript) else {
            throw .hostProofInvalid
        }
        let traffic = keys.trafficKeys(transcript: transcript)
        return SessionCiphers(sealer: RecordSealer(key: traffic.clientToHost), opener: RecordOpener(key: traffic.hostToClient))
    }

    public static func randomNonce() -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }
}

/// Host side of the handshake. The room keys are derived once when the room is made, so an
/// unauthenticated connection costs the host two HMACs, never an scrypt.
public struct HostHandshake: Sendable {
    private let keys: RoomKeys
    private let nonce: [UInt8]
    private var helloBytes: [UInt8] = []
    private var challengeBytes: [UInt8] = []

    public init(keys: RoomKeys, nonce: [UInt8] = ClientHandshake.randomNonce()) {
        self.keys = keys
        self.nonce = nonce
    }

    /// Returns the challenge; a version mismatch throws, with `replyBeforeClosing` set.
    public mutating func receiveHello(_ bytes: [UInt8]) throws(HandshakeError) -> [UInt8] {
        guard case .hello(let hello) = try HandshakeError.decode(bytes) else { throw .unexpected("expected hello") }
        guard let theirNonce = Base64.decode(hello.nonce), theirNonce.count == 32 else {
            throw .malformed("hello has a bad nonce")
        }
        guard let version = ProtocolVersion.range.negotiate(with: hello.versions) else {
            throw .versionMismatch(hello.versions)
        }
        helloBytes = bytes
        challengeBytes = WireMessage.challenge(Challenge(
            version: version, nonce: Base64.encode(nonce), salt: Base64.encode(keys.salt), kdf: keys.cost)).encoded()
        return challengeBytes
    }

    /// Checks the joiner's proof; returns `auth_ok` and the session ciphers.
    public func receiveAuth(_ bytes: [UInt8]) throws(HandshakeError) -> (reply: [UInt8], ciphers: SessionCiphers) {
        guard !challengeBytes.isEmpty else { throw .unexpected("auth before hello") }
        guard case .auth(let proof) = try HandshakeError.decode(bytes) else { throw .unexpected("expected auth") }
        let transcript = Transcript.hash(helloBytes, challengeBytes)
        guard let mac = Base64.decode(proof.proof), keys.verify(proof: mac, role: .client, transcript: transcript) else {
            throw .clientProofInvalid
        }
        let reply = WireMessage.authOK(Proof(proof: Base64.encode(keys.proof(role: .host, transcript: transcript)))).encoded()
        let traffic = keys.trafficKeys(transcript: transcript)
        return (reply, SessionCiphers(sealer: RecordSealer(key: traffic.hostToClient), opener: RecordOpener(key: traffic.clientToHost)))
    }
}

enum Transcript {
    static func hash(_ hello: [UInt8], _ challenge: [UInt8]) -> [UInt8] {
        var sha = SHA256()
        for part in [hello, challenge] {
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
    case clientProofInvalid
    case hostProofInvalid
    case weakKeyDerivation(KDFCost)
    case refused(ErrorInfo)
    case timedOut
    /// The connection ended before the handshake finished.
    case closedEarly

    static func decode(_ bytes: [UInt8]) throws(HandshakeError) -> WireMessage {
        do { return try WireMessage.decode(bytes) } catch { throw .malformed(error.description) }
    }

    /// What the host tells the peer before it closes, where telling helps an honest peer.
    public var replyBeforeClosing: WireMessage? {
        switch self {
        case .versionMismatch(let theirs):
            .error(ErrorInfo(code: .version, message:
                "this room speaks protocol versions \(ProtocolVersion.minimum)-\(ProtocolVersion.maximum), you speak \(theirs.min)-\(theirs.max)"))
        case .clientProofInvalid:
            .error(ErrorInfo(code: .auth, message: "wrong room code"))
        default: nil
        }
    }

    public var description: String {
        switch self {
        case .malformed(let why): "malformed handshake: \(why)"
        case .unexpected(let what): "unexpected handshake message: \(what)"
        case .versionMismatch(let r): "no common protocol version (peer speaks \(r.min)-\(r.max))"
        case .clientProofInvalid: "joiner's proof is wrong (wrong room code)"
        case .hostProofInvalid: "host could not prove it knows the room code"
        case .weakKeyDerivation(let c): "host asked for a key derivation cost we refuse (logN=\(c.logN), r=\(c.r), p=\(c.p))"
        case .refused(let info): "refused: \(info.message)"
        case .timedOut: "handshake timed out"
        case .closedEarly: "connection closed during the handshake"
        }
    }
}
