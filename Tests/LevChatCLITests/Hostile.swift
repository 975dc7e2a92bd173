import Foundation
import LevChatCore
import LevChatTestSupport
import Testing

/// The hostile peer (issue 16, item 7): a raw client holding the code joins a room of two real
/// `levchat-peer` processes (alice hosting, bob a member) and sends, case after case, a mutated
/// version of every message a member or a host can send: each field empty, huge, negative,
/// extreme, another member's id or name, replayed, out of order, of another generation or epoch.
/// One case in eight is a client without the code (garbage, a broken or foreign hello, a wrong
/// code, a cut frame). Every case comes from the seed. After every 25 cases the honest members
/// each say a line, and it must reach the other once. At the end: both processes alive, every
/// honest line shown once and in order by the other, and no line shown under alice's or bob's
/// name that alice or bob did not say.
struct HostileRun {
    let cases: Int
    let seed: UInt64

    struct Report: CustomStringConvertible {
        var seed: UInt64 = 0
        var byKind: [String: Int] = [:]
        var honestLines = 0
        var seconds = 0.0
        var description: String {
            let kinds = byKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            return "\(byKind.values.reduce(0, +)) hostile cases (seed \(seed)) in \(String(format: "%.1f", seconds)) s: \(kinds); "
                + "\(honestLines) honest lines, each shown once and in order; nothing shown under a name its key did not sign"
        }
    }

    func run() async throws -> Report {
        let started = ContinuousClock.now
        // A large guessing budget: guessing is not what this run tests, and 1 case in 8 has no code.
        let room = try await LoopbackRoom(environment: ["LEVCHAT_GUESS_BUDGET": "10000", "LEVCHAT_HANDSHAKE_TIMEOUT_MS": "3000",
                                                        "LEVCHAT_DEAD_AFTER_MS": "60000"])
        defer { room.stopAll() }
        let bob = try await room.join("bob", environment: ["LEVCHAT_DEAD_AFTER_MS": "60000"])
        var random = SplitMix(seed: seed)
        var report = Report(seed: seed)
        var bobSaid: [String] = [], aliceSaid: [String] = []
        var known = Known()
        for number in 0..<cases {
            let kind = try attack(number, room: room, known: &known, random: &random)
            report.byKind[kind, default: 0] += 1
            if number % 25 == 24 || number == cases - 1 {
                let line = "bob \(number)", other = "alice \(number)"
                bob.send(line)
                room.host.send(other)
                bobSaid.append(line)
                aliceSaid.append(other)
                try await room.host.waitFor("bob's line after case \(number) (\(kind))", timeout: .seconds(60)) { $0.isMessage(from: "bob", text: line) }
                try await bob.waitFor("alice's line after case \(number) (\(kind))", timeout: .seconds(60)) { $0.isMessage(from: "alice", text: other) }
                #expect(room.host.isRunning && bob.isRunning, "case \(number)")
            }
        }
        report.honestLines = bobSaid.count + aliceSaid.count
        for (peer, said, by) in [(room.host, bobSaid, "bob"), (bob, aliceSaid, "alice")] {
            let shown = peer.events.filter { $0.type == "message" && $0["from"] == by }.compactMap { $0["text"] }
            #expect(shown == said, "\(peer.label) shows \(by)'s lines as \(shown.suffix(5)), not \(said.suffix(5))")
        }
        for (peer, name, said) in [(room.host, "alice", aliceSaid), (bob, "bob", bobSaid), (room.host, "bob", bobSaid), (bob, "alice", aliceSaid)] {
            let forged = peer.events.filter { $0.type == "message" && $0["from"] == name && !said.contains($0["text"] ?? "") }
            #expect(forged.isEmpty, "\(peer.label) shows a line under \(name) that \(name) did not say: \(forged.first.map(String.init(describing:)) ?? "")")
        }
        #expect(room.host.isRunning && bob.isRunning)
        report.seconds = Double((ContinuousClock.now - started).components.seconds)
            + Double((ContinuousClock.now - started).components.attoseconds) / 1e18
        return report
    }

    /// What the attacker has seen of the room: real records to replay and mutate, the others' ids.
    struct Known {
        var records: [ChatRecord] = []
        var members: [Member] = []
        var generation = 0
    }

    /// One case: returns its kind, for the report.
    private func attack(_ number: Int, room: LoopbackRoom, known: inout Known, random: inout SplitMix) throws -> String {
        let source = "127.0.\(2 + number % 2).\(1 + (number / 2) % 250)"
        guard let client = try? RawClient(port: room.port, source: source) else { return "connect-refused" }
        client.setReadTimeout(.seconds(10))
        defer { client.shutdownWrite() }
        if random.next() % 8 == 0 { return noCode(client, room: room, random: &random) }
        guard (try? client.handshake(code: room.code)) == .some(nil) else { return "handshake-refused" }
        let name = "e\(number)"
        var history: [ChatRecord] = []
        var welcome: Welcome?
        client.sendFrame(try client.seal(.join(Join(node: client.identity.node, name: name, listenPort: 0, endpoints: [], lastSeq: 0,
                                                    key: client.publicKey, claim: client.claim(name), proof: client.linkProof()))))
        while welcome == nil, let message = try? client.nextMessage() {
            switch message {
            case .history(let chunk): history += chunk.records
            case .welcome(let w): welcome = w
            default: break
            }
        }
        guard let welcome else { return "not-welcomed" }
        known.records = Array((known.records + history).suffix(64))
        known.members = welcome.roster.members
        known.generation = welcome.gen
        let (kind, message) = mutated(from: client, name: name, known: known, random: &random)
        switch message {
        case .message(let m): client.sendFrame(try client.seal(m))
        case .raw(let bytes): client.sendFrame(try client.sealRaw(bytes))
        }
        return kind
    }

    enum Payload {
        case message(WireMessage)
        case raw([UInt8])
    }

    /// Numbers at the edges of every range.
    static let extremes = [0, -1, Int.min, Int.max, 1 << 62, (1 << 62) + 1, 65_536, 1_000_000_007]
    static let extremeTimes: [Int64] = [-1, Int64.min, Int64.max, 4_102_444_800_001, 0]
    static let nastyNames = ["", "alice", "bob", "BOB", "b0b", "b\u{43E}b", "ali\u{200B}ce", "\u{1B}[2J", String(repeating: "x", count: 300),
                             "e" + String(repeating: "\u{301}", count: 5000), "\u{202E}bob"]
    static let nastyTexts = ["", "\u{1B}]0;owned\u{07}", String(repeating: "y", count: 5000), "ok", "\u{0}\u{7F}\u{9B}"]

    private func pick<T>(_ list: [T], _ random: inout SplitMix) -> T { list[Int(random.next() % UInt64(list.count))] }

    private func mutated(from client: RawClient, name: String, known: Known, random: inout SplitMix) -> (String, Payload) {
        let room = client.roomID!
        let others = known.members.filter { $0.node != client.identity.node }
        let victim = others.isEmpty ? nil : pick(others, &random)
        let replay = known.records.isEmpty ? nil : pick(known.records, &random)
        switch random.next() % 16 {
        case 0:  // a chat under another member's id, name, or both, with our own signature
            let node = random.next() % 2 == 0 ? (victim?.node ?? client.identity.node) : client.identity.node
            let signedName = random.next() % 2 == 0 ? (victim?.name ?? "bob") : pick(Self.nastyNames, &random)
            let id = MessageID(node: node, seq: pick(Self.extremes, &random))
            let sig = client.identity.signChat(room: room, id: id, kind: .text, name: signedName, text: "as someone else")
            return ("chat-identity", .message(.chat(Chat(id: id, name: signedName, text: "as someone else", sig: sig))))
        case 1:  // a chat with a good signature and a field changed after signing
            guard case .chat(var chat) = client.signedChat(seq: 1, text: "signed") else { return ("none", .raw([])) }
            switch random.next() % 4 {
            case 0: chat.text = pick(Self.nastyTexts, &random)
            case 1: chat.name = pick(Self.nastyNames, &random)
            case 2: chat.id.seq = pick(Self.extremes, &random)
            default: chat.kind = .action
            }
            return ("chat-tampered", .message(.chat(chat)))
        case 2:  // a chat of our own, with nasty text or an extreme sequence number, properly signed
            let text = pick(Self.nastyTexts, &random)
            let seq = pick(Self.extremes, &random)
            let id = MessageID(node: client.identity.node, seq: seq)
            return ("chat-extreme", .message(.chat(Chat(id: id, name: name, text: text,
                                                       sig: client.identity.signChat(room: room, id: id, kind: .text, name: name, text: text)))))
        case 3:  // a replayed record of another member's, as our chat (its signature is theirs)
            guard let record = replay else { return ("none", .raw([])) }
            return ("chat-replayed", .message(.chat(Chat(id: record.id, name: record.from, text: record.text, kind: record.kind, sig: record.sig))))
        case 4:  // a push of a real record with a field changed, or of our own record under another name
            var records: [ChatRecord] = []
            if let record = replay {
                var changed = record
                switch random.next() % 5 {
                case 0: changed.from = victim?.name ?? "alice"
                case 1: changed.text = "words put in " + record.from + "'s mouth"
                case 2: changed.seq = pick(Self.extremes, &random)
                case 3: changed.time = pick(Self.extremeTimes, &random)
                default: changed.id.node = client.identity.node
                }
                records.append(changed)
            }
            let signedName = victim?.name ?? "bob"
            let id = MessageID(node: client.identity.node, seq: 7)
            records.append(ChatRecord(seq: pick(Self.extremes, &random), id: id, from: signedName, text: "pushed as \(signedName)",
                                      time: pick(Self.extremeTimes, &random), key: client.publicKey,
                                      sig: client.identity.signChat(room: room, id: id, kind: .text, name: signedName, text: "pushed as \(signedName)")))
            return ("push", .message(.push(Push(records: records))))
        case 5:  // a push of many copies, or of exact copies of what the room has
            let copies = replay.map { Array(repeating: $0, count: Int(random.next() % 5000)) } ?? []
            return ("push-copies", .message(.push(Push(records: copies))))
        case 6:  // a rename to a nasty or taken name, with a claim that is bad, old, or another key's
            let newName = pick(Self.nastyNames, &random)
            let claim: NameClaim
            switch random.next() % 3 {
            case 0: claim = client.claim(newName, counter: pick(Self.extremes, &random))
            case 1: claim = client.claim(newName, counter: 0)
            default: claim = NameClaim(counter: 2, sig: Base64.encode(Array(repeating: 9, count: 64)))
            }
            return ("nick", .message(.nick(Rename(name: newName, claim: claim))))
        case 7:
            return ("ping", .message(.ping(Ping(lastSeq: pick(Self.extremes, &random)))))
        case 8:  // a second join or a resume on a joined link, as another member
            let node = victim?.node ?? client.identity.node
            var resume = Resume(node: node, name: victim?.name ?? name, ordinal: pick(Self.extremes, &random), listenPort: pick(Self.extremes, &random),
                                endpoints: [], lastSeq: pick(Self.extremes, &random), tail: [], key: client.publicKey, claim: client.claim(name))
            resume.gen = pick(Self.extremes, &random)
            return ("resume", .message(random.next() % 2 == 0 ? .resume(resume)
                : .join(Join(node: node, name: name, listenPort: 0, endpoints: [], lastSeq: 0, key: client.publicKey, claim: client.claim(name)))))
        case 9:  // what only a host sends: a handover, a rekey, a presence, a msg, a redirect
            let member = victim ?? Member(node: client.identity.node, name: name, ordinal: 2, endpoints: [])
            let host: [WireMessage] = [
                .handover(Handover(epoch: pick(Self.extremes, &random), host: member)),
                .rekey(Rekey(gen: pick(Self.extremes, &random))),
                .rekey(Rekey(gen: pick(Self.extremes, &random), secret: RandomBytes.make(Int(random.next() % 3) * 16))),
                .presence(Presence(event: .renamed, member: member, reason: nil, time: pick(Self.extremeTimes, &random))),
                .redirect(Redirect(endpoints: ["127.0.0.1:1"], role: .host, epoch: pick(Self.extremes, &random))),
                .welcome(Welcome(you: member, roster: RosterSnapshot(epoch: 1, host: member.node, members: [member]), historyCount: 0,
                                 grant: RoomGrant.random())),
            ]
            return ("host-only", .message(pick(host, &random)))
        case 10:
            if let record = replay { return ("msg", .message(.msg(record))) }
            return ("msg", .message(.bye(Bye(reason: pick(Self.nastyTexts, &random)))))
        case 11:  // handshake messages inside the session
            return ("hello-again", .message(.hello(Hello(versions: VersionRange(min: pick(Self.extremes, &random), max: 3), role: "member",
                                                         auth: .secret, nonce: "AAAA", gen: pick(Self.extremes, &random)))))
        case 12:  // random bytes as a record's plaintext
            return ("garbage", .raw((0..<Int(random.next() % 300)).map { _ in UInt8(truncatingIfNeeded: random.next()) }))
        case 13:  // a real message cut short, or with bytes after it
            let bytes = client.signedChat(seq: 3, text: "cut").encoded()
            let cut = Int(random.next() % UInt64(bytes.count))
            return ("binary-cut", .raw(random.next() % 2 == 0 ? Array(bytes[..<cut]) : bytes + [0, 1, 2]))
        case 14:  // JSON with the right type and fields of the wrong types or ranges
            let types = ["chat", "push", "nick", "join", "resume", "presence", "welcome", "rekey", "ping", "msg"]
            let json = "{\"type\":\"\(pick(types, &random))\",\"gen\":-5,\"name\":7,\"records\":[{}],\"lastSeq\":1e400,\"time\":-1}"
            return ("json-wrong", .raw(Array(json.utf8)))
        default:  // an unknown type, or a probe after joining
            return ("unknown", .message(random.next() % 2 == 0 ? .probe(Probe(node: NodeID.random()))
                                        : .unknown("x-\(random.next())")))
        }
    }

    /// A client without the code: garbage, a foreign or broken hello, a wrong code, a cut frame.
    private func noCode(_ client: RawClient, room: LoopbackRoom, random: inout SplitMix) -> String {
        switch random.next() % 4 {
        case 0:
            client.send((0..<Int(random.next() % 200)).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            return "nocode-garbage"
        case 1:
            let wrong = room.code.hasPrefix("Z") ? "Y" + room.code.dropFirst() : "Z" + room.code.dropFirst()
            _ = try? client.handshake(code: String(wrong))
            return "nocode-wrong-code"
        case 2:
            _ = try? client.handshake(code: room.code, versions: VersionRange(min: 1, max: 2))
            return "nocode-old-version"
        default:
            client.send([0, 0, 0, 200, 123, 34])
            return "nocode-cut-frame"
        }
    }
}
