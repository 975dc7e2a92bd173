import LevChatCore
import NIOCore
import NIOPosix
import Testing
@testable import LevChatTransport

/// The real handshake and records over real TCP on 127.0.0.1, through `SecureLink` on both sides.
@Suite struct LoopbackHandshakeTests {
    /// Both ends of these handshakes run on the tests' concurrency pool (two threads here), which
    /// the process-driving tests beside them can hold for tens of seconds on a loaded two-core
    /// machine: a fresh-clone CI run saw a 30 s handshake deadline fire. The deadlines only
    /// matter when something is wrong, so they are long.
    static let patience: Duration = .seconds(300)

    /// Runs a one-connection host (timeouts generous: this is not a timing test, and CI runs it
    /// beside many processes on two cores) that echoes one chat's text back, and returns what the joiner saw.
    func exchange(hostCode: String, joinCode: String) async throws -> Result<String, ConnectError> {
        let hostKeyring = RoomKeyring(code: try RoomCode(parsing: hostCode), grant: .random())
        let listener = try await Transport.listen(host: "127.0.0.1", port: 0)
        let port = try #require(listener.channel.localAddress?.port)
        return try await withThrowingTaskGroup { group in
            group.addTask {
                try await listener.executeThenClose { inbound in
                    for try await connection in inbound {
                        _ = await SecureLink.accept(connection, keyring: hostKeyring, guard: nil, timeout: Self.patience, clock: .system) { link in
                            if case .chat(let chat)? = try? await link.receive() {
                                try? await link.send(.error(ErrorInfo(code: .protocolError, message: chat.text)))
                            }
                        }
                        return
                    }
                }
            }
            let identity = PeerIdentity()
            let result: Result<String, ConnectError>
            do throws(ConnectError) {
                let text = try await SecureLink.connect(to: "127.0.0.1:\(port)", keyring: RoomKeyring(code: try! RoomCode(parsing: joinCode)),
                                                        connectTimeout: Self.patience, handshakeTimeout: Self.patience) { link -> String in
                    try? await link.send(.chat(Chat(signedBy: identity, room: link.roomID, seq: 1, name: "tester", text: "ping")))
                    guard case .error(let info)? = try? await link.receive() else { return "" }
                    return info.message.description
                }
                result = .success(text)
            } catch {
                result = .failure(error)
            }
            try await group.waitForAll()
            return result
        }
    }

    @Test func rightCodeGivesAnEncryptedLinkBothWays() async throws {
        let result = try await exchange(hostCode: "ABC-DEF", joinCode: "abc def")
        #expect(result == .success("ping"), "\(result)")
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

    /// A member that missed a fresh secret (it was away when someone left) comes back with the
    /// code at once, and its out-of-date secret costs its address nothing: the host's limiter here
    /// refuses an address after a single wrong proof, and the member still gets in.
    @Test func aStaleSecretFallsBackToTheCodeWithoutCountingAsAGuess() async throws {
        let code = try RoomCode(parsing: "ABC-DEF")
        let current = RoomGrant.random()
        let hostKeyring = RoomKeyring(code: code, grant: current)
        var strict = FailureLimiter.Policy()
        strict.maximumFailures = 1
        let addressGuard = AddressGuard(policy: strict) { _, _ in }
        let listener = try await Transport.listen(host: "127.0.0.1", port: 0)
        let port = try #require(listener.channel.localAddress?.port)
        let seen = try await withThrowingTaskGroup { group -> [String] in
            group.addTask {
                try await listener.executeThenClose { inbound in
                    for try await connection in inbound {
                        let answered = await SecureLink.accept(connection, keyring: hostKeyring, guard: addressGuard,
                                                               timeout: Self.patience, clock: .system) { link -> Bool in
                            if case .chat(let chat)? = try? await link.receive() {
                                try? await link.send(.error(ErrorInfo(code: .protocolError, message: chat.text)))
                            }
                            return true
                        }
                        if answered == true { return }
                    }
                }
            }
            let stale = RoomGrant(roomID: current.roomID, secret: RandomBytes.make(32), generation: current.generation)!
            let identity = PeerIdentity()
            let text = try await SecureLink.connect(to: "127.0.0.1:\(port)", keyring: RoomKeyring(code: code, grant: stale),
                                                    connectTimeout: Self.patience, handshakeTimeout: Self.patience) { link -> String in
                try? await link.send(.chat(Chat(signedBy: identity, room: link.roomID, seq: 1, name: "tester", text: "back")))
                guard case .error(let info)? = try? await link.receive() else { return "" }
                return info.message.description
            }
            try await group.waitForAll()
            return [text]
        }
        #expect(seen == ["back"])
        #expect(addressGuard.refusal(for: "127.0.0.1") == nil)
    }
}
