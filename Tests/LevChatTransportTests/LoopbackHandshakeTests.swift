import LevChatCore
import NIOCore
import NIOPosix
import Testing
@testable import LevChatTransport

/// The real handshake and records over real TCP on 127.0.0.1.
@Suite struct LoopbackHandshakeTests {
    static let cost = KDFCost(logN: 4)

    /// Runs a one-connection host that echoes one record back, and returns what the joiner saw.
    func exchange(hostCode: String, joinCode: String) async throws -> Result<[UInt8], ConnectError> {
        let keys = try RoomKeys(code: RoomCode(parsing: hostCode), salt: RoomKeys.randomSalt(), cost: Self.cost)
        let listener = try await Transport.listen(host: "127.0.0.1", port: 0)
        let port = try #require(listener.channel.localAddress?.port)
        return try await withThrowingTaskGroup { group in
            group.addTask {
                try await listener.executeThenClose { inbound in
                    for try await connection in inbound {
                        try await connection.executeThenClose { input, output in
                            var frames = FrameReader(input)
                            guard let ciphers = try? await SecureHandshake.accept(
                                frames: &frames, outbound: output, channel: connection.channel, keys: keys, timeout: .seconds(5))
                            else { return }
                            var reader = SecureReader(frames: frames, opener: ciphers.opener)
                            var sealer = ciphers.sealer
                            if case .chat(let chat)? = try await reader.next() {
                                try await output.write(ByteBuffer(bytes: sealer.seal(Array(chat.text.utf8))))
                            }
                        }
                        return
                    }
                }
                return Result<[UInt8], ConnectError>.success([])
            }
            let client = try await Transport.connect(host: "127.0.0.1", port: port)
            let result: Result<[UInt8], ConnectError> = try await client.executeThenClose { input, output in
                var frames = FrameReader(input)
                do {
                    let joined = try await SecureHandshake.join(
                        frames: &frames, outbound: output, channel: client.channel,
                        keyring: RoomKeyring(code: RoomCode(parsing: joinCode), minimumCost: Self.cost), timeout: .seconds(5))
                    var sealer = joined.ciphers.sealer
                    var opener = joined.ciphers.opener
                    let chat = WireMessage.chat(Chat(id: MessageID(node: NodeID.random(), seq: 1), text: "ping")).encoded()
                    try await output.write(ByteBuffer(bytes: sealer.seal(chat)))
                    let reply = try #require(try await frames.next())
                    return .success(try opener.open(reply))
                } catch let error as ConnectError {
                    return .failure(error)
                }
            }
            try await group.waitForAll()
            return result
        }
    }

    @Test func rightCodeGivesAnEncryptedLinkBothWays() async throws {
        #expect(try await exchange(hostCode: "ABC-DEF", joinCode: "abc def") == .success(Array("ping".utf8)))
    }

    @Test func wrongCodeIsToldApartFromAnUnreachableHost() async throws {
        let result = try await exchange(hostCode: "ABC-DEF", joinCode: "ABC-DEG")
        guard case .failure(.handshake(.refused(let info))) = result else {
            Issue.record("expected a refusal, got \(result)")
            return
        }
        #expect(info.code == "auth")

        // Nothing listens on this port any more.
        let listener = try await Transport.listen(host: "127.0.0.1", port: 0)
        let port = try #require(listener.channel.localAddress?.port)
        try await listener.executeThenClose { _ in }
        await #expect(throws: ConnectError.unreachable("127.0.0.1:\(port)", "connection refused")) {
            _ = try await Transport.connect(host: "127.0.0.1", port: port)
        }
    }
}
