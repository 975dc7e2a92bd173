import Testing
@testable import LevChatCore

@Suite struct HandshakeTests {
    static let cost = KDFCost(logN: 4)
    let code = try! RoomCode(parsing: "ABC-123")
    let salt = RoomKeys.randomSalt()

    func hostKeys() throws -> RoomKeys { try RoomKeys(code: code, salt: salt, cost: Self.cost) }

    @Test func bothSidesAgreeOnKeysAndRecordsFlowBothWays() throws {
        var client = ClientHandshake()
        var host = HostHandshake(keys: try hostKeys())
        let challenge = try host.receiveHello(client.helloBytes)
        let parameters = try client.receiveChallenge(challenge, minimumCost: Self.cost)
        #expect(parameters.salt == salt)
        let auth = client.prove(with: try RoomKeys(code: code, salt: parameters.salt, cost: parameters.cost))
        let (reply, hostCiphers) = try host.receiveAuth(auth)
        let clientCiphers = try client.receiveAuthOK(reply)

        var clientSealer = clientCiphers.sealer, hostOpener = hostCiphers.opener
        var hostSealer = hostCiphers.sealer, clientOpener = clientCiphers.opener
        #expect(try hostOpener.open(clientSealer.seal(Array("up".utf8))) == Array("up".utf8))
        #expect(try clientOpener.open(hostSealer.seal(Array("down".utf8))) == Array("down".utf8))
    }

    @Test func wrongCodeIsRefusedWithAReplyForTheJoiner() throws {
        var client = ClientHandshake()
        var host = HostHandshake(keys: try hostKeys())
        let challenge = try host.receiveHello(client.helloBytes)
        let parameters = try client.receiveChallenge(challenge, minimumCost: Self.cost)
        let auth = client.prove(with: try RoomKeys(code: RoomCode(parsing: "ABC-124"), salt: parameters.salt, cost: parameters.cost))
        #expect(throws: HandshakeError.clientProofInvalid) { try host.receiveAuth(auth) }
        guard case .error(let info)? = HandshakeError.clientProofInvalid.replyBeforeClosing else {
            Issue.record("no reply for a wrong code")
            return
        }
        #expect(info.code == "auth")
        #expect(throws: HandshakeError.refused(info)) { try client.receiveAuthOK(WireMessage.error(info).encoded()) }
    }

    @Test func hostThatDoesNotKnowTheCodeIsCaught() throws {
        // An impostor advertises a room and answers with a proof made from another code.
        var client = ClientHandshake()
        let impostorKeys = try RoomKeys(code: RoomCode(parsing: "ZZZ-ZZZ"), salt: salt, cost: Self.cost)
        var impostor = HostHandshake(keys: impostorKeys)
        let challenge = try impostor.receiveHello(client.helloBytes)
        _ = try client.receiveChallenge(challenge, minimumCost: Self.cost)
        let auth = client.prove(with: try hostKeys())
        let forgedReply = WireMessage.authOK(Proof(proof: Base64.encode(Array(repeating: 7, count: 32)))).encoded()
        #expect(throws: HandshakeError.clientProofInvalid) { try impostor.receiveAuth(auth) }
        #expect(throws: HandshakeError.hostProofInvalid) { try client.receiveAuthOK(forgedReply) }
    }

    @Test func versionWithNoOverlapIsRefusedWithAnExplanation() throws {
        let future = ClientHandshake(versions: VersionRange(min: 7, max: 9))
        var host = HostHandshake(keys: try hostKeys())
        #expect(throws: HandshakeError.versionMismatch(VersionRange(min: 7, max: 9))) { try host.receiveHello(future.helloBytes) }
        guard case .error(let info)? = HandshakeError.versionMismatch(VersionRange(min: 7, max: 9)).replyBeforeClosing else {
            Issue.record("no reply for a version mismatch")
            return
        }
        #expect(info.code == "version" && info.message.contains("7-9"))
    }

    @Test func overlappingVersionRangesPickTheHighestCommon() {
        #expect(VersionRange(min: 1, max: 3).negotiate(with: VersionRange(min: 2, max: 5)) == 3)
        #expect(VersionRange(min: 1, max: 1).negotiate(with: VersionRange(min: 2, max: 5)) == nil)
    }

    @Test func joinerRefusesAChallengeCheaperThanItsMinimum() throws {
        var client = ClientHandshake()
        var cheapHost = HostHandshake(keys: try RoomKeys(code: code, salt: salt, cost: KDFCost(logN: 2)))
        let challenge = try cheapHost.receiveHello(client.helloBytes)
        #expect(throws: HandshakeError.weakKeyDerivation(KDFCost(logN: 2))) {
            try client.receiveChallenge(challenge, minimumCost: KDFCost(logN: 16))
        }
    }

    @Test func garbageAndOutOfOrderMessagesAreHandshakeErrors() throws {
        var host = HostHandshake(keys: try hostKeys())
        #expect(throws: HandshakeError.self) { try host.receiveHello(Array("not json".utf8)) }
        #expect(throws: HandshakeError.self) { try host.receiveHello(WireMessage.auth(Proof(proof: "")).encoded()) }
        #expect(throws: HandshakeError.unexpected("auth before hello")) { try host.receiveAuth(WireMessage.auth(Proof(proof: "")).encoded()) }
    }
}

@Suite struct RecordCipherTests {
    let key = SymmetricKeyFixture.key

    @Test func tamperedReplayedAndReorderedRecordsFail() throws {
        var sealer = RecordSealer(key: key)
        let first = try sealer.seal(Array("one".utf8))
        let second = try sealer.seal(Array("two".utf8))

        var tampered = first
        tampered[0] ^= 1
        var opener = RecordOpener(key: key)
        #expect(throws: RecordError.authenticationFailed) { try opener.open(tampered) }

        opener = RecordOpener(key: key)
        #expect(throws: RecordError.authenticationFailed) { try opener.open(second) }  // reordered

        opener = RecordOpener(key: key)
        #expect(try opener.open(first) == Array("one".utf8))
        #expect(throws: RecordError.authenticationFailed) { try opener.open(first) }  // replayed
        #expect(try opener.open(second) == Array("two".utf8))
        #expect(throws: RecordError.tooShort) { try opener.open([1, 2, 3]) }
    }

    @Test func recordsCarryNoNonceOnTheWire() throws {
        var sealer = RecordSealer(key: key)
        #expect(try sealer.seal(Array(repeating: 0, count: 100)).count == 100 + RecordSealer.overhead)
    }
}

import Crypto
enum SymmetricKeyFixture {
    static let key = SymmetricKey(size: .bits256)
}
