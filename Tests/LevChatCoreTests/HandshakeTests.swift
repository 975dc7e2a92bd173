import Crypto
import Testing
@testable import LevChatCore

@Suite struct HandshakeTests {
    let code = try! RoomCode(parsing: "ABC-123")
    let grant = RoomGrant.random()
    var hostCredentials: RoomCredentials { RoomCredentials(code: code, grant: grant) }
    var joinerCredentials: RoomCredentials { RoomCredentials(code: code, grant: nil) }

    /// Runs the whole exchange; returns both sides' ciphers.
    func handshake(joiner: RoomCredentials, host: RoomCredentials) throws -> (client: JoinedLink, host: SessionCiphers) {
        var client = ClientHandshake(credentials: joiner)
        var server = HostHandshake(code: host.code, grant: try #require(host.grant))
        let challenge = try server.receiveHello(client.helloBytes)
        let auth = try client.receiveChallenge(challenge)
        let (reply, hostCiphers) = try server.receiveAuth(auth)
        return (try client.receiveAuthOK(reply), hostCiphers)
    }

    func recordsFlowBothWays(_ client: SessionCiphers, _ host: SessionCiphers) throws {
        var clientSealer = client.sealer, hostOpener = host.opener
        var hostSealer = host.sealer, clientOpener = client.opener
        #expect(try hostOpener.open(clientSealer.seal(Array("up".utf8))) == Array("up".utf8))
        #expect(try clientOpener.open(hostSealer.seal(Array("down".utf8))) == Array("down".utf8))
    }

    @Test func theCodeGivesALinkAndTheRoomID() throws {
        let (client, host) = try handshake(joiner: joinerCredentials, host: hostCredentials)
        #expect(client.roomID == grant.roomID)
        try recordsFlowBothWays(client.ciphers, host)
    }

    @Test func theChallengeCarriesNothingDerivedFromTheCodeButAFreshShare() throws {
        var host1 = HostHandshake(code: code, grant: grant)
        var host2 = HostHandshake(code: code, grant: grant)
        let hello = ClientHandshake(credentials: joinerCredentials).helloBytes
        guard case .challenge(let a) = try WireMessage.decode(try host1.receiveHello(hello)),
              case .challenge(let b) = try WireMessage.decode(try host2.receiveHello(hello)) else {
            Issue.record("no challenge")
            return
        }
        #expect(a.rid == grant.roomID.hex && a.auth == .code)
        #expect(a.sid != b.sid && a.ya != b.ya)
    }

    @Test func theRoomSecretGivesALinkWithoutTheCode() throws {
        // A member that holds the grant, even with another code in hand, gets in by the secret.
        let member = RoomCredentials(code: try RoomCode(parsing: "ZZZ-ZZZ"), grant: grant)
        let (client, host) = try handshake(joiner: member, host: hostCredentials)
        try recordsFlowBothWays(client.ciphers, host)
    }

    @Test func aWrongCodeIsRefusedWithAReplyForTheJoiner() throws {
        let wrong = RoomCredentials(code: try RoomCode(parsing: "ABC-124"), grant: nil)
        #expect(throws: HandshakeError.clientProofInvalid) { try handshake(joiner: wrong, host: hostCredentials) }
        #expect(HandshakeError.clientProofInvalid.isFailedProof)
        guard case .error(let info)? = HandshakeError.clientProofInvalid.replyBeforeClosing else {
            Issue.record("no reply for a wrong code")
            return
        }
        #expect(info.code == "auth")
    }

    @Test func aWrongSecretOrAnotherRoomIsRefused() throws {
        let forged = RoomCredentials(code: code, grant: RoomGrant(roomID: grant.roomID, secret: RandomBytes.make(32))!)
        #expect(throws: HandshakeError.secretProofInvalid) { try handshake(joiner: forged, host: hostCredentials) }
        let otherRoom = RoomCredentials(code: code, grant: RoomGrant.random())
        #expect(throws: HandshakeError.wrongRoom) { try handshake(joiner: otherRoom, host: hostCredentials) }
    }

    @Test func aHostThatDoesNotKnowTheCodeIsCaught() throws {
        // An impostor advertises a room and runs CPace with another code: it learns nothing it can
        // use offline, cannot produce the host's confirmation, and the joiner stops there.
        var client = ClientHandshake(credentials: joinerCredentials)
        var impostor = HostHandshake(code: try RoomCode(parsing: "ZZZ-ZZZ"), grant: .random())
        let auth = try client.receiveChallenge(try impostor.receiveHello(client.helloBytes))
        #expect(throws: HandshakeError.clientProofInvalid) { try impostor.receiveAuth(auth) }
        let forgedReply = WireMessage.authOK(Proof(proof: Base64.encode(Array(repeating: 7, count: 32)), yb: nil)).encoded()
        #expect(throws: HandshakeError.hostProofInvalid) { try client.receiveAuthOK(forgedReply) }
    }

    /// Replaces the joiner's share Yb in an `auth` frame.
    func auth(_ bytes: [UInt8], withShare share: String?, proof: String? = nil) throws -> [UInt8] {
        guard case .auth(var p) = try WireMessage.decode(bytes) else { throw HandshakeError.unexpected("not auth") }
        p.yb = share
        if let proof { p.proof = proof }
        return WireMessage.auth(p).encoded()
    }

    static let lowOrderShares = [
        "0000000000000000000000000000000000000000000000000000000000000000",  // the neutral element
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",  // order 8
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",  // order 8 with bit 255 set
    ]

    @Test(arguments: lowOrderShares)
    func aLowOrderShareFromTheJoinerAborts(_ hex: String) throws {
        var client = ClientHandshake(credentials: joinerCredentials)
        var host = HostHandshake(code: code, grant: grant)
        let honest = try client.receiveChallenge(try host.receiveHello(client.helloBytes))
        let hostile = try auth(honest, withShare: Base64.encode(CPaceTests.hex(hex)))
        #expect(throws: HandshakeError.invalidShare) { try host.receiveAuth(hostile) }
        #expect(HandshakeError.invalidShare.isFailedProof)
    }

    @Test(arguments: lowOrderShares)
    func aLowOrderShareFromTheHostAborts(_ hex: String) throws {
        var client = ClientHandshake(credentials: joinerCredentials)
        var host = HostHandshake(code: code, grant: grant)
        guard case .challenge(var challenge) = try WireMessage.decode(try host.receiveHello(client.helloBytes)) else {
            Issue.record("no challenge")
            return
        }
        challenge.ya = Base64.encode(CPaceTests.hex(hex))
        #expect(throws: HandshakeError.invalidShare) { try client.receiveChallenge(WireMessage.challenge(challenge).encoded()) }
    }

    @Test func sharesOfTheWrongLengthAreMalformed() throws {
        var client = ClientHandshake(credentials: joinerCredentials)
        var host = HostHandshake(code: code, grant: grant)
        let honest = try client.receiveChallenge(try host.receiveHello(client.helloBytes))
        for bad in [nil, Base64.encode(Array(repeating: 9, count: 31)), Base64.encode(Array(repeating: 9, count: 33)), "!!"] {
            #expect(throws: HandshakeError.self) { try host.receiveAuth(try auth(honest, withShare: bad)) }
        }
    }

    @Test func aWrongConfirmationMACIsRefused() throws {
        var client = ClientHandshake(credentials: joinerCredentials)
        var host = HostHandshake(code: code, grant: grant)
        let honest = try client.receiveChallenge(try host.receiveHello(client.helloBytes))
        guard case .auth(let p) = try WireMessage.decode(honest) else {
            Issue.record("no auth")
            return
        }
        var mac = try #require(Base64.decode(p.proof))
        mac[0] ^= 1
        #expect(throws: HandshakeError.clientProofInvalid) { try host.receiveAuth(try auth(honest, withShare: p.yb, proof: Base64.encode(mac))) }
    }

    @Test func aReplayedAuthFromAnEarlierAttemptIsRefused() throws {
        // The host's fresh sid and share make each attempt's confirmation worthless in the next.
        var client = ClientHandshake(credentials: joinerCredentials)
        var first = HostHandshake(code: code, grant: grant)
        let recorded = try client.receiveChallenge(try first.receiveHello(client.helloBytes))
        _ = try first.receiveAuth(recorded)
        var second = HostHandshake(code: code, grant: grant)
        _ = try second.receiveHello(client.helloBytes)
        #expect(throws: HandshakeError.clientProofInvalid) { try second.receiveAuth(recorded) }
    }

    @Test func aProtocol1HelloGetsASentenceNamingTheVersion() throws {
        let old = Array(#"{"type":"hello","versions":{"min":1,"max":1},"nonce":"AAAA","role":"member"}"#.utf8)
        var host = HostHandshake(code: code, grant: grant)
        #expect(throws: HandshakeError.versionMismatch(VersionRange(min: 1, max: 1))) { try host.receiveHello(old) }
        guard case .error(let info)? = HandshakeError.versionMismatch(VersionRange(min: 1, max: 1)).replyBeforeClosing else {
            Issue.record("no reply for a version mismatch")
            return
        }
        #expect(info.code == "version" && info.message.contains("protocol version 3-3") && info.message.contains("1-1"))
    }

    @Test func overlappingVersionRangesPickTheHighestCommon() {
        #expect(VersionRange(min: 1, max: 3).negotiate(with: VersionRange(min: 2, max: 5)) == 3)
        #expect(VersionRange(min: 1, max: 1).negotiate(with: VersionRange(min: 2, max: 5)) == nil)
    }

    @Test func garbageAndOutOfOrderMessagesAreHandshakeErrors() throws {
        var host = HostHandshake(code: code, grant: grant)
        #expect(throws: HandshakeError.self) { try host.receiveHello(Array("not json".utf8)) }
        #expect(throws: HandshakeError.self) { try host.receiveHello(WireMessage.auth(Proof(proof: "", yb: nil)).encoded()) }
        #expect(throws: HandshakeError.unexpected("auth before hello")) {
            try host.receiveAuth(WireMessage.auth(Proof(proof: "", yb: nil)).encoded())
        }
    }
}

@Suite struct RecordCipherTests {
    let key = SymmetricKey(size: .bits256)

    @Test func tamperedReplayedAndReorderedRecordsFail() throws {
        var sealer = RecordSealer(key: key)
        let first = try sealer.seal(Array("one".utf8))
        let second = try sealer.seal(Array("two".utf8))

        #expect(first[0] == RecordKind.link.rawValue)
        var tampered = first
        tampered[1] ^= 1
        var opener = RecordOpener(key: key)
        #expect(throws: RecordError.authenticationFailed) { try opener.open(tampered) }
        var otherKind = first
        otherKind[0] = 7
        #expect(throws: RecordError.unknownKind(7)) { try opener.open(otherKind) }

        opener = RecordOpener(key: key)
        #expect(throws: RecordError.authenticationFailed) { try opener.open(second) }  // reordered

        opener = RecordOpener(key: key)
        #expect(try opener.open(first) == Array("one".utf8))
        #expect(throws: RecordError.authenticationFailed) { try opener.open(first) }  // replayed
        #expect(try opener.open(second) == Array("two".utf8))
        #expect(throws: RecordError.tooShort) { try opener.open([0, 2, 3]) }
    }

    @Test func recordsCarryNoNonceOnTheWire() throws {
        var sealer = RecordSealer(key: key)
        #expect(try sealer.seal(Array(repeating: 0, count: 100)).count == 100 + RecordSealer.overhead)
    }
}
