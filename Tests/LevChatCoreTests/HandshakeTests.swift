import Crypto
import Foundation
import Testing
@testable import LevChatCore
import LevChatTestSupport

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

    /// Both ends of a link derive the same channel binding, and no two links share one (a fetch's
    /// proof signs it: `FetchProof`).
    @Test func bothEndsShareABindingNoOtherLinkHas() throws {
        let member = RoomCredentials(code: code, grant: grant)
        var seen: Set<[UInt8]> = []
        for credentials in [member, member, joinerCredentials, joinerCredentials] {
            let (client, host) = try handshake(joiner: credentials, host: hostCredentials)
            #expect(client.ciphers.binding == host.binding)
            #expect(client.ciphers.binding.count == 32)
            #expect(seen.insert(host.binding).inserted)
        }
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
        // What honest peers cause every day is logged below notice; a hostile or broken peer's
        // failures are not.
        #expect(HandshakeError.clientProofInvalid.isRoutine && HandshakeError.closedEarly.isRoutine && HandshakeError.wrongRoom.isRoutine)
        #expect(HandshakeError.refused(ErrorInfo(code: .limited, message: "limited")).isRoutine)
        #expect(![HandshakeError.invalidShare, .secretProofInvalid, .malformed("x"), .unexpected("y"), .timedOut].contains { $0.isRoutine })
        guard case .error(let info)? = HandshakeError.clientProofInvalid.replyBeforeClosing else {
            Issue.record("no reply for a wrong code")
            return
        }
        #expect(info.code == "auth")
    }

    @Test func aWrongSecretOrAnotherRoomIsRefused() throws {
        // A joiner whose secret is not the host's sees it in the challenge and sends no proof.
        let forged = RoomCredentials(code: code, grant: RoomGrant(roomID: grant.roomID, secret: RandomBytes.make(32))!)
        #expect(throws: HandshakeError.staleSecret) { try handshake(joiner: forged, host: hostCredentials) }
        #expect(!HandshakeError.staleSecret.isFailedProof)
        let otherRoom = RoomCredentials(code: code, grant: RoomGrant.random())
        #expect(throws: HandshakeError.wrongRoom) { try handshake(joiner: otherRoom, host: hostCredentials) }
        // One that sends a proof anyway (a guesser) is refused and counted.
        var host = HostHandshake(code: code, grant: grant)
        _ = try host.receiveHello(ClientHandshake(credentials: forged).helloBytes)
        let guess = WireMessage.auth(Proof(proof: Base64.encode(RandomBytes.make(32)), yb: nil)).encoded()
        #expect(throws: HandshakeError.secretProofInvalid) { try host.receiveAuth(guess) }
        #expect(HandshakeError.secretProofInvalid.isFailedProof)
    }

    /// A member that is not the host answers a hello with the code by saying where the host is;
    /// the joiner follows it. With the room secret, a redirect in place of a challenge is wrong.
    @Test func aRedirectInPlaceOfAChallengeIsFollowedOnlyWithTheCode() throws {
        let redirect = Redirect(endpoints: ["10.0.0.1:4000"], role: .member, epoch: 2)
        var joiner = ClientHandshake(credentials: joinerCredentials)
        #expect(throws: HandshakeError.redirected(redirect)) { try joiner.receiveChallenge(WireMessage.redirect(redirect).encoded()) }
        var member = ClientHandshake(credentials: hostCredentials)
        #expect(throws: HandshakeError.unexpected("redirect")) { try member.receiveChallenge(WireMessage.redirect(redirect).encoded()) }
    }

    /// A member that missed a fresh secret (it was away when someone left) finds out from the
    /// challenge's tag, whichever side is ahead, while one on the same line of secrets gets in at
    /// the later generation.
    @Test func theChallengeTagTellsAStaleSecretFromALaggingOne() throws {
        let lagging = RoomCredentials(code: code, grant: grant)
        let ahead = RoomCredentials(code: code, grant: grant.ratcheted(to: 3)!)
        let (client, host) = try handshake(joiner: lagging, host: ahead)
        try recordsFlowBothWays(client.ciphers, host)
        _ = try handshake(joiner: ahead, host: lagging)
        let fresh = RoomCredentials(code: code, grant: grant.fresh())
        #expect(throws: HandshakeError.staleSecret) { try handshake(joiner: lagging, host: fresh) }
        #expect(throws: HandshakeError.staleSecret) { try handshake(joiner: fresh, host: lagging) }
    }

    /// The secret handshake's keys need the ephemeral Diffie-Hellman as well as the secret: someone
    /// who holds the room secret and recorded the whole handshake (a member who has since left)
    /// cannot open the link, and so cannot read a fresh secret sent over it.
    @Test func holdingTheSecretDoesNotOpenSomeoneElsesLink() throws {
        let member = RoomCredentials(code: code, grant: grant)
        var client = ClientHandshake(credentials: member)
        var server = HostHandshake(code: code, grant: grant)
        let hello = client.helloBytes
        let challenge = try server.receiveHello(hello)
        let auth = try client.receiveChallenge(challenge)
        let (reply, hostCiphers) = try server.receiveAuth(auth)
        let joined = try client.receiveAuthOK(reply)
        var hostSealer = hostCiphers.sealer
        let record = try hostSealer.seal(Array("rekey with a fresh secret".utf8))
        var own = joined.ciphers.opener
        #expect(try own.open(record) == Array("rekey with a fresh secret".utf8))
        // Everything the eavesdropper has: the secret, every byte of the handshake, and its own
        // ephemeral keys in place of the two it never saw.
        let transcript = Transcript.hash(hello, challenge, [])
        var guesses: [[UInt8]] = [grant.secret]
        for _ in 0..<4 { guesses.append(grant.secret + (try EphemeralKey().agree(with: EphemeralKey().publicKey))) }
        for secret in guesses {
            var opener = RecordOpener(key: LinkKeySchedule(secret: secret, transcript: transcript, label: "secret").hostToClient)
            #expect(throws: RecordError.self) { try opener.open(record) }
        }
    }

    /// X25519 as the member handshake uses it, against RFC 7748 section 6.1, byte for byte.
    @Test func theEphemeralKeyAgreesAsRFC7748Says() throws {
        let alice = try #require(EphemeralKey(rawRepresentation: HexBytes.decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")!))
        let bob = try #require(EphemeralKey(rawRepresentation: HexBytes.decode("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")!))
        #expect(alice.publicKey.hexString == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        #expect(bob.publicKey.hexString == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        let shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
        #expect(try alice.agree(with: bob.publicKey).hexString == shared)
        #expect(try bob.agree(with: alice.publicKey).hexString == shared)
        // A low-order point (here the all-zero key) is refused, not turned into an all-zero secret.
        #expect(throws: HandshakeError.invalidShare) { try alice.agree(with: Array(repeating: 0, count: 32)) }
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
        #expect(info.code == "version" && info.message.contains("protocol version 5-5") && info.message.contains("1-1"))
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

    /// The record layer's AES-256-GCM is the published one with our nonce (4 zero bytes and the
    /// counter): McGrew and Viega's GCM test case 14 (AES-256, all-zero key, 96-bit all-zero IV,
    /// one zero block, no associated data) is record 0 of that key, byte for byte.
    @Test func aesRecordsMatchGCMTestCase14() throws {
        var out: [UInt8] = []
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        try Record.seal([UInt8](repeating: 0, count: 16), cipher: .aes256GCM, header: none, key: SymmetricKey(data: [UInt8](repeating: 0, count: 32)),
                        counter: 0, associatedData: none) { out.append(contentsOf: $0) }
        #expect(out == HexBytes.decode("cea7403d4d606b6e074ec5d3baf39d18" + "d0d1c8a799996bf0265b98b5d48ab919"))
    }

    /// Our nonce is the published one for a counter that fills all 8 bytes: RFC 8439's AEAD
    /// decryption vector (appendix A.5) has nonce `00000000 0102030405060708`, so it is record
    /// 0x0102030405060708 of its key with its associated data and no header. Sealing gives its
    /// ciphertext and tag byte for byte, and opening where the record lies gives its plaintext.
    @Test func chachaRecordsMatchRFC8439AppendixA5() throws {
        let key = SymmetricKey(data: HexBytes.decode("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0")!)
        let plaintext = HexBytes.decode(
            "496e7465726e65742d4472616674732061726520647261667420646f63756d65" + "6e74732076616c696420666f722061206d6178696d756d206f6620736978206d"
            + "6f6e74687320616e64206d617920626520757064617465642c207265706c6163" + "65642c206f72206f62736f6c65746564206279206f7468657220646f63756d65"
            + "6e747320617420616e792074696d652e20497420697320696e617070726f7072" + "6961746520746f2075736520496e7465726e65742d4472616674732061732072"
            + "65666572656e6365206d6174657269616c206f7220746f206369746520746865" + "6d206f74686572207468616e206173202fe2809c776f726b20696e2070726f67"
            + "726573732e2fe2809d")!
        let sealed = HexBytes.decode(
            "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb2" + "4c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf"
            + "332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c855" + "9797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4"
            + "b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523e" + "af4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a"
            + "0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a10" + "49e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29"
            + "a6ad5cb4022b02709b" + "eead9d67890cbb22392336fea1851f38")!
        let associatedData = HexBytes.decode("f33388860000000000004e91")!
        let counter: UInt64 = 0x0102_0304_0506_0708
        var out: [UInt8] = []
        try associatedData.withUnsafeBytes { ad in
            try Record.seal(plaintext, cipher: .chacha20Poly1305, header: UnsafeRawBufferPointer(start: nil, count: 0), key: key,
                            counter: counter, associatedData: ad) { out.append(contentsOf: $0) }
        }
        #expect(out == sealed)
        let opened = try sealed.withUnsafeBytes { record in
            try associatedData.withUnsafeBytes { ad in
                try Result { () throws(RecordError) -> Data in
                    try Record.open(record, cipher: .chacha20Poly1305, headerLength: 0, key: key, counter: counter, associatedData: ad)
                }.get()
            }
        }
        #expect(Array(opened) == plaintext)
    }

    /// The broadcast record's header and associated data, built on the stack, are the bytes
    /// PROTOCOL.md gives (`1 ‖ counter`, `1 ‖ epoch ‖ counter`) for every epoch and counter tried,
    /// and a record sealed by hand with them opens.
    @Test func broadcastHeaderAndAssociatedDataAreTheSpecifiedBytes() throws {
        var random = SplitMix(seed: 18)
        let grant = RoomGrant.random(), host = NodeID.random()
        for _ in 0..<200 {
            let epoch = Int.random(in: 0...(1 << 62), using: &random), counter = UInt64.random(in: 0..<UInt64.max, using: &random)
            let stacked = try Record.withBroadcastAssociatedData(epoch: epoch, counter: counter) { Array($0) }
            let expected = [RecordKind.broadcast.rawValue] + BigEndian.bytes(UInt64(epoch)) + BigEndian.bytes(counter)
            #expect(stacked == expected)
        }
        var sealer = BroadcastSealer(grant: grant, epoch: 7, host: host)
        var opener = BroadcastOpener(grant: grant, epoch: 7, host: host)
        for counter in 0..<3 as Range<UInt64> {
            let record = try sealer.seal([9, 8, 7])
            #expect(Array(record[0..<9]) == [RecordKind.broadcast.rawValue] + BigEndian.bytes(counter))
            let key = BroadcastKey.derive(grant: grant, epoch: 7, host: host)
            let box = try ChaChaPoly.SealedBox(nonce: ChaChaPoly.Nonce(data: [0, 0, 0, 0] + BigEndian.bytes(counter)),
                                               ciphertext: record[9..<(record.count - 16)], tag: record.suffix(16))
            #expect(Array(try ChaChaPoly.open(box, using: key, authenticating: [RecordKind.broadcast.rawValue] + BigEndian.bytes(7) + BigEndian.bytes(counter))) == [9, 8, 7])
            #expect(try opener.open(record) == [9, 8, 7])
        }
        // The nonce: 4 zero bytes and the counter; the last counter is refused, never wrapped.
        #expect(try Record.withNonce(0x0102_0304_0506_0708) { Array($0) } == [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
        #expect(throws: RecordError.counterExhausted) { try Record.withNonce(UInt64.max) { _ in () } }
    }

    /// A file's sender moves its direction to AES-256-GCM after its `file` answer: from then on
    /// records are kind 2 under a key of their own, an opener that has not moved refuses them, one
    /// that has refuses ChaCha20-Poly1305 records, and replays and reordering still fail. Opening
    /// where a record lies gives what opening a copy gives.
    @Test func aLinkMovesToAESGCMOnceAndBothEndsMustAgree() throws {
        var random = SplitMix(seed: 9)
        var sealer = RecordSealer(key: key), opener = RecordOpener(key: key), stayed = RecordOpener(key: key)
        let before = try sealer.seal([1, 2, 3])
        #expect(before[0] == RecordKind.link.rawValue)
        #expect(try opener.open(before) == [1, 2, 3])
        #expect(try stayed.open(before) == [1, 2, 3])
        sealer.switchTo(.aes256GCM)
        opener.switchTo(.aes256GCM)
        #expect(sealer.cipher == .aes256GCM && opener.cipher == .aes256GCM)
        var records: [([UInt8], [UInt8])] = []
        for _ in 0..<50 {
            let plain = (0..<Int.random(in: 0...70_000, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            records.append((plain, try sealer.seal(plain)))
        }
        #expect(throws: RecordError.unknownKind(RecordKind.linkAESGCM.rawValue)) { try stayed.open(records[0].1) }
        var replay = opener
        for (plain, record) in records {
            #expect(record[0] == RecordKind.linkAESGCM.rawValue && record.count == plain.count + RecordSealer.overhead)
            let inPlace = try record.withUnsafeBytes { bytes in try Result { () throws(RecordError) -> Data in try replay.openData(bytes) }.get() }
            #expect(Array(inPlace) == plain)
            #expect(try opener.open(record) == plain)
        }
        #expect(throws: RecordError.authenticationFailed) { try opener.open(records[49].1) }  // replayed
        var reordered = RecordOpener(key: key)
        _ = try reordered.open(before)
        reordered.switchTo(.aes256GCM)
        #expect(throws: RecordError.authenticationFailed) { try reordered.open(records[1].1) }
        var chachaAfter = RecordSealer(key: key)
        _ = try chachaAfter.seal([0])
        #expect(throws: RecordError.unknownKind(RecordKind.link.rawValue)) { try opener.open(try chachaAfter.seal([0])) }
        // Once: a second switch, or one back, changes nothing.
        sealer.switchTo(.chacha20Poly1305)
        #expect(sealer.cipher == .aes256GCM)
    }

    /// A file's AES-256-GCM records above `Record.largeRecordBytes` are opened from their parts
    /// (one copy less than a chat line's): on both sides of that bound a record opens to what was
    /// sealed, and a change to any one of its bytes (ciphertext or tag) is refused.
    @Test func largeAESRecordsOpenFromTheirPartsAndRefuseAnyChangedByte() throws {
        var random = SplitMix(seed: 41)
        var sealer = RecordSealer(key: key), opener = RecordOpener(key: key)
        sealer.switchTo(.aes256GCM)
        opener.switchTo(.aes256GCM)
        let bound = Record.largeRecordBytes - 16  // plaintext bytes whose ciphertext and tag fill the bound
        for size in [0, 1, bound - 1, bound, bound + 1, bound + 2, 8_191, 60 * 1024, 200_000] {
            let plain = (0..<size).map { _ in UInt8.random(in: 0...255, using: &random) }
            let record = try sealer.seal(plain)
            for _ in 0..<8 {
                var changed = record
                let at = Int.random(in: 1..<changed.count, using: &random)
                changed[at] ^= UInt8.random(in: 1...255, using: &random)
                var tried = opener
                #expect(throws: RecordError.authenticationFailed) { try tried.open(changed) }
            }
            if size > 0 {
                var cut = opener
                #expect(throws: RecordError.authenticationFailed) { try cut.open(Array(record.dropLast())) }
            }
            #expect(try opener.open(record) == plain)
        }
    }

    @Test func recordsCarryNoNonceOnTheWire() throws {
        var sealer = RecordSealer(key: key)
        #expect(try sealer.seal(Array(repeating: 0, count: 100)).count == 100 + RecordSealer.overhead)
    }
}
