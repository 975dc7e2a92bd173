import CLinuxExtras
import Foundation
import LevChatCore
import LevChatTestSupport
import Testing

/// Files, peer to peer (Docs/CLI.md, "Files"; Docs/PROTOCOL.md, "Files"): the real binary over
/// loopback. What arrives is checked against the source file's own SHA-256, computed here.
@Suite(.timeLimit(.minutes(5)))
struct FileTransferTests {
    /// A folder of its own under the temporary directory, removed by `remove`.
    static func folder(_ label: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("levchat-files-\(label)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func remove(_ paths: String...) {
        for path in paths { try? FileManager.default.removeItem(atPath: path) }
    }

    /// `size` bytes from a seeded generator (incompressible, reproducible).
    static func randomFile(at path: String, size: Int, seed: UInt64) throws {
        var random = SplitMix(seed: seed)
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw CocoaError(.fileWriteUnknown)
        }
        defer { try? handle.close() }
        var left = size
        while left > 0 {
            let count = min(left, 1 << 20)
            var chunk = [UInt8](repeating: 0, count: count)
            chunk.withUnsafeMutableBytes { bytes in
                let words = count / 8
                for i in 0..<words { bytes.storeBytes(of: random.next(), toByteOffset: i * 8, as: UInt64.self) }
                for i in (words * 8)..<count { bytes[i] = UInt8(truncatingIfNeeded: random.next()) }
            }
            handle.write(Data(chunk))
            left -= count
        }
    }

    static func sha256(_ path: String) throws -> String {
        let handle = try #require(FileHandle(forReadingAtPath: path))
        defer { try? handle.close() }
        var hasher = FileHasher()
        while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty { hasher.update([UInt8](data)) }
        return hasher.hex()
    }

    /// This process's umask (which the peers it starts inherit), read without changing it.
    static func umask() throws -> mode_t {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("Umask:") })
        return try #require(mode_t(line.dropFirst("Umask:".count).trimmingCharacters(in: .whitespaces), radix: 8))
    }

    static func offer(at peer: PeerProcess, named name: String, timeout: Duration = .seconds(20)) async throws -> Event {
        try await peer.waitFor("the offer of \(name)", timeout: timeout) { $0.type == "offer" && $0["name"] == name }
    }

    /// The `received` event of offer `id`. A failure of it is an issue, unless it came before
    /// the call (a fetch that failed on purpose, then resumed).
    static func received(at peer: PeerProcess, id: Int, timeout: Duration = .seconds(120)) async throws -> Event {
        let earlier = Set(peer.events.filter { $0.type == "transfer_failed" }.map(\.line))
        return try await peer.waitFor("offer \(id) received", timeout: timeout) { event in
            if event.type == "transfer_failed" && event.int("id") == id && !earlier.contains(event.line) {
                Issue.record("offer \(id) failed: \(event)")
            }
            return event.type == "received" && event.int("id") == id
        }
    }

    /// A text file from the host and 100 MiB of random bytes from a member, fetched by two
    /// others at once: each arrives whole, named as offered, with the offer's SHA-256, which is
    /// the source's. The host serves one, a member's own listener the other. Both ciphers carry
    /// bytes: carol takes AES-256-GCM (as on a machine with AES in hardware) and bob does not
    /// (ChaCha20-Poly1305 throughout), and the host's log says which it used for whom.
    @Test func aTextFileAndAHundredMebibytesArriveWhole() async throws {
        let source = try Self.folder("source"), bobs = try Self.folder("bob"), carols = try Self.folder("carol")
        defer { Self.remove(source, bobs, carols) }
        let text = source + "/meeting notes.txt"
        try "agenda\n1. files\n2. speed\n".write(toFile: text, atomically: true, encoding: .utf8)
        let big = source + "/random.bin"
        try Self.randomFile(at: big, size: 100 << 20, seed: 7)
        let aes = ["LEVCHAT_FILE_CIPHER": "aes-256-gcm"]
        let room = try await LoopbackRoom(environment: aes.merging(["LEVCHAT_LOG": "info"]) { $1 })
        defer { room.stopAll() }
        let bob = try await room.join("bob", extra: ["--downloads", bobs], environment: ["LEVCHAT_FILE_CIPHER": "chacha20-poly1305"])
        let carol = try await room.join("carol", extra: ["--downloads", carols], environment: aes)
        room.host.send(#"/send "\#(text)""#)
        let textOffer = try await Self.offer(at: carol, named: "meeting notes.txt")
        bob.send("/send \(big)")
        let bigOffer = try await Self.offer(at: carol, named: "random.bin")
        #expect(textOffer["sha256"] == (try Self.sha256(text)))
        #expect(bigOffer["sha256"] == (try Self.sha256(big)))
        #expect(bigOffer.int("size") == 100 << 20)
        let (textID, bigID) = (try #require(textOffer.int("id")), try #require(bigOffer.int("id")))
        carol.send("/get \(textID)")
        carol.send("/get \(bigID)")
        _ = try await Self.offer(at: bob, named: "meeting notes.txt")
        bob.send("/get \(textID)")
        let carolsText = try await Self.received(at: carol, id: textID)
        let carolsBig = try await Self.received(at: carol, id: bigID)
        let bobsText = try await Self.received(at: bob, id: textID)
        #expect(carolsText["path"] == carols + "/meeting notes.txt")
        #expect(carolsBig["path"] == carols + "/random.bin")
        #expect(bobsText["path"] == bobs + "/meeting notes.txt")
        #expect(try Self.sha256(carols + "/random.bin") == bigOffer["sha256"])
        #expect(try String(contentsOfFile: carols + "/meeting notes.txt", encoding: .utf8) == "agenda\n1. files\n2. speed\n")
        #expect(try String(contentsOfFile: bobs + "/meeting notes.txt", encoding: .utf8) == "agenda\n1. files\n2. speed\n")
        #expect(!FileManager.default.fileExists(atPath: carols + "/random.bin.part"))
        // Each sender heard that its file went whole.
        try await bob.waitFor("bob's file sent") { $0.type == "sent" && $0["name"] == "random.bin" }
        try await room.host.waitFor("alice's file sent") { $0.type == "sent" && $0["name"] == "meeting notes.txt" }
        let log = room.host.errorText.split(separator: "\n").filter { $0.contains("serving meeting notes.txt") }
        #expect(log.count == 2 && log.contains { $0.contains("with aes-256-gcm") } && log.contains { $0.contains("with chacha20-poly1305") },
                "\(log)")
    }

    /// A script's `/get` (`join CODE < commands`): its input ends at once, and the run leaves
    /// once the file is in, not halfway through it. Ctrl-C while it waits leaves at once, the part
    /// kept to resume.
    @Test func aScriptsGetArrivesBeforeItLeaves() async throws {
        let source = try Self.folder("source"), downloads = try Self.folder("script"), stopped = try Self.folder("stopped")
        defer { Self.remove(source, downloads, stopped) }
        try Self.randomFile(at: source + "/report.bin", size: 5_000_000, seed: 11)
        // 5 s at 1 MB/s: the end of input comes long before the last byte, whatever the machine.
        let room = try await LoopbackRoom(environment: ["LEVCHAT_FILE_RATE_BYTES": "1000000"])
        defer { room.stopAll() }
        room.host.send("/send \(source)/report.bin")
        let offer = try await room.host.waitFor("the offer") { $0.type == "offer" && $0["name"] == "report.bin" }
        let id = try #require(offer.int("id"))
        let commands = source + "/commands.txt"
        try "/get \(id)\n".write(toFile: commands, atomically: true, encoding: .utf8)

        let script = try await room.join("script", extra: ["--downloads", downloads], stdinFile: commands, waitForEntry: false)
        #expect(try await script.waitForExit(timeout: .seconds(120)) == 0)
        let received = try #require(script.events.first { $0.type == "received" && $0.int("id") == id }, "\(script.transcript)")
        #expect(received["path"] == downloads + "/report.bin")
        #expect(try Self.sha256(downloads + "/report.bin") == offer["sha256"])
        #expect(script.events.contains { $0.type == "notice" && ($0["message"] ?? "").hasPrefix("input ended: leaving once the download under way is over") })
        let left = try #require(script.events.firstIndex { $0.type == "closed" })
        #expect(try #require(script.events.firstIndex { $0.type == "received" }) < left)

        let second = try await room.join("second", extra: ["--downloads", stopped], stdinFile: commands, waitForEntry: false)
        _ = try await second.waitFor("the download under way", timeout: .seconds(60)) { $0.type == "transfer" && $0.int("id") == id }
        second.signal(SIGINT)
        #expect(try await second.waitForExit() == 0)
        let failed = try #require(second.events.first { $0.type == "transfer_failed" && $0.int("id") == id }, "\(second.transcript)")
        #expect(failed.bool("resumable") == true && (failed["message"] ?? "").contains("stopped when you left the room"), "\(failed)")
        #expect(FileManager.default.fileExists(atPath: stopped + "/report.bin.part"))
        #expect(!FileManager.default.fileExists(atPath: stopped + "/report.bin"))
    }

    /// A script's `/send` (`join CODE < commands`): its input ends while the file is still being
    /// hashed, and the offer is still made before the run leaves (the offer then ends with it,
    /// and the script is told why nobody can fetch it); before, it was dropped without a word.
    /// Ctrl-C while a file is read leaves at once and says the offer was not made.
    @Test func aScriptsSendIsOfferedBeforeItLeaves() async throws {
        let source = try Self.folder("source")
        defer { Self.remove(source) }
        let big = source + "/disk.img", bigger = source + "/bigger.img"
        #expect(FileManager.default.createFile(atPath: big, contents: nil) && truncate(big, 300_000_000) == 0)
        #expect(FileManager.default.createFile(atPath: bigger, contents: nil) && truncate(bigger, 64_000_000_000) == 0)
        let commands = source + "/commands.txt", slow = source + "/slow.txt"
        try "/send \(big)\nsaid after it\n".write(toFile: commands, atomically: true, encoding: .utf8)
        try "/send \(bigger)\n".write(toFile: slow, atomically: true, encoding: .utf8)
        let room = try await LoopbackRoom()
        defer { room.stopAll() }

        let script = try await room.join("script", stdinFile: commands, waitForEntry: false)
        #expect(try await script.waitForExit(timeout: .seconds(120)) == 0)
        let offer = try await room.host.waitFor("the script's offer") { $0.type == "offer" && $0["name"] == "disk.img" }
        #expect(offer["from"] == "script")
        try await room.host.waitFor("the offer ended") { $0.type == "offer_ended" && $0.int("id") == offer.int("id") }
        #expect(script.events.contains { $0.type == "notice" && $0["message"] == "your offer of disk.img ends as you leave: others can fetch it only while you are in the room" },
                "\(script.transcript)")

        // 64 GB of hashing: Ctrl-C comes long before it is done, whatever the machine.
        let stopped = try await room.join("stopped", stdinFile: slow, waitForEntry: false)
        _ = try await stopped.waitFor("the hashing said", timeout: .seconds(60)) { $0.type == "notice" && ($0["message"] ?? "").hasPrefix("reading bigger.img") }
        stopped.signal(SIGINT)
        #expect(try await stopped.waitForExit() == 0)
        #expect(stopped.events.contains { $0.type == "notice" && $0["message"] == "a /send was not offered: you left before its file was read" },
                "\(stopped.transcript)")
        #expect(!room.host.events.contains { $0.type == "offer" && $0["name"] == "bigger.img" })
    }

    /// `/cancel` alone stops the `/send`s not offered yet: the file being read (64 GB of
    /// hashing, which no machine finishes before the `/cancel` comes), the one typed after it and
    /// waiting its turn, and a folder being read; each says so, none is offered, and a `/send`
    /// after them is offered as usual. With nothing being read, `/cancel` alone says what it does.
    /// Before, a mistyped `/send ~/disk.img` could only be waited out, or left with the room.
    @Test func cancelAloneStopsTheSendsBeingRead() async throws {
        let source = try Self.folder("source")
        defer { Self.remove(source) }
        let bigger = source + "/bigger.img", small = source + "/small.txt", folder = source + "/images"
        #expect(FileManager.default.createFile(atPath: bigger, contents: nil) && truncate(bigger, 64_000_000_000) == 0)
        try "a small file\n".write(toFile: small, atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for index in 0..<4 {
            let image = folder + "/disk\(index).img"
            #expect(FileManager.default.createFile(atPath: image, contents: nil) && truncate(image, 7_000_000_000) == 0)
        }
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob")
        func notice(_ text: String) -> (Event) -> Bool { { $0.type == "notice" && $0["message"] == text } }

        room.host.send("/cancel")
        _ = try await room.host.waitFor("nothing to stop", notice("nothing to cancel: no /send is being read and no transfer is under way"))
        room.host.send("/send \(bigger)")
        room.host.send("/send \(small)")
        _ = try await room.host.waitFor("the hashing said", timeout: .seconds(60)) {
            $0.type == "notice" && $0["message"] == "reading bigger.img (64.0 GB) to hash it before it is offered… (/cancel stops it)"
        }
        // `/files` names it too, though it is no offer yet.
        room.host.send("/files")
        _ = try await room.host.waitFor("/files names it", notice("bigger.img (64.0 GB) is being read to be offered (/cancel stops it)"))
        room.host.send("/cancel")
        _ = try await room.host.waitFor("the big one stopped", timeout: .seconds(60), notice("/send \(bigger) stopped: it is not offered"))
        _ = try await room.host.waitFor("the one after it stopped", notice("/send \(small) stopped: it is not offered"))

        room.host.send("/send \(folder)")
        _ = try await room.host.waitFor("the folder's hashing said", timeout: .seconds(60)) {
            $0.type == "notice" && ($0["message"] ?? "").hasPrefix("reading images/ (4 files, 28.0 GB) to hash it")
        }
        room.host.send("/cancel")
        _ = try await room.host.waitFor("the folder stopped", timeout: .seconds(60), notice("/send \(folder) stopped: it is not offered"))
        // Nothing is being read any more: `/files` lists no offer and names nothing being read.
        // (`/code` after it: lines are answered in order, so all of the list is in before its answer.)
        let listed = room.host.events.count
        room.host.send("/files")
        room.host.send("/code")
        try await room.host.waitFor("the code after the list") { $0.type == "code" }
        let answer = Array(room.host.events.dropFirst(listed))
        let files = try #require(answer.first { $0.type == "files" }, "\(answer)")
        #expect((files.fields["offers"] as? [Any])?.isEmpty == true, "\(files)")
        #expect(!answer.contains { $0.type == "notice" && ($0["message"] ?? "").hasSuffix("is being read to be offered (/cancel stops it)") }, "\(answer)")

        room.host.send("/send \(small)")
        let offer = try await bob.waitFor("the small file's offer", timeout: .seconds(60)) { $0.type == "offer" && $0["name"] == "small.txt" }
        #expect(offer.int("id") == 1, "nothing was offered before it")
        for peer in [room.host, bob] {
            #expect(!peer.events.contains { $0.type == "offer" && ["bigger.img", "images"].contains($0["name"] ?? "") }, "\(peer.transcript)")
        }
    }

    /// A receiver killed (SIGKILL) halfway keeps its `.part`; run again, `/get` resumes from the
    /// part's length (the first `transfer` event says where) and the whole file's hash matches.
    /// The same for a folder (three files, the kill inside the second), whose part is the folder
    /// unpacked as far as it came: the resume starts where it stopped, and the folder arrives whole.
    @Test(arguments: [false, true]) func aFetchResumesAfterTheReceiverIsKilled(folder: Bool) async throws {
        let source = try Self.folder("source"), downloads = try Self.folder("bob"), home = try Self.folder("home")
        defer { Self.remove(source, downloads, home) }
        let offered = folder ? source + "/film" : source + "/movie.bin"
        let name = folder ? "film" : "movie.bin"
        let files = folder ? (0..<3).map { offered + "/reel\($0).bin" } : [offered]
        if folder { try FileManager.default.createDirectory(atPath: offered, withIntermediateDirectories: true) }
        for (index, file) in files.enumerated() { try Self.randomFile(at: file, size: 6_000_000 / files.count, seed: 11 + UInt64(index)) }
        // The sender at 500 kB/s: the whole file takes 12 s, and the kill comes at the first
        // progress event (about a second in), so it lands before the end on a slow machine too.
        let room = try await LoopbackRoom(environment: ["LEVCHAT_FILE_RATE_BYTES": "500000"])
        defer { room.stopAll() }
        room.host.send("/send \(offered)")
        _ = try await Self.offer(at: room.host, named: name)
        let bob = try await room.join("bob", extra: ["--downloads", downloads], environment: ["XDG_STATE_HOME": home])
        let offer = try await Self.offer(at: bob, named: name)
        let id = try #require(offer.int("id"))
        bob.send("/get \(id)")
        try await bob.waitFor("a second of the transfer") { $0.type == "transfer" && ($0.int("bytes") ?? 0) > 0 }
        bob.killNow()
        let part = downloads + "/\(name).part"
        // A file's part is its bytes; a folder's, the files as far as they came.
        let kept = folder ? try Self.folderBytes(part) : (try? FileManager.default.attributesOfItem(atPath: part)[.size] as? Int) ?? 0
        #expect(kept > 0 && kept < 6_000_000, "the part holds \(kept) bytes")
        // Same user (same key, so it takes its own place in the room back), same folder.
        let again = try await room.join("bob", extra: ["--downloads", downloads], environment: ["XDG_STATE_HOME": home])
        let seenAgain = try await Self.offer(at: again, named: name)
        again.send("/get \(try #require(seenAgain.int("id")))")
        let resumed = try await again.waitFor("the resumed transfer") { $0.type == "transfer" && $0.int("offset") != nil }
        let offset = try #require(resumed.int("offset"))
        if folder {
            // The archive's headers (512 bytes each) and padding come on top of the files' bytes.
            #expect(offset >= kept && offset <= kept + 4 * 1024, "resumed at \(offset) with \(kept) bytes of files kept")
        } else {
            #expect(offset == kept)
        }
        let done = try await Self.received(at: again, id: try #require(seenAgain.int("id")))
        #expect(done["sha256"] == offer["sha256"])
        for file in files {
            let arrived = downloads + "/" + (folder ? "film/" + (file as NSString).lastPathComponent : "movie.bin")
            #expect(try Self.sha256(arrived) == (try Self.sha256(file)))
        }
    }

    /// The bytes of the files under a folder's part (its journal not counted).
    static func folderBytes(_ part: String) throws -> Int {
        try (FileManager.default.enumerator(atPath: part)?.allObjects as? [String] ?? []).filter { $0 != ".levchat-headers" }.reduce(0) { sum, relative in
            let attributes = try FileManager.default.attributesOfItem(atPath: part + "/" + relative)
            return sum + (attributes[.type] as? FileAttributeType == .typeRegular ? (attributes[.size] as? Int ?? 0) : 0)
        }
    }

    /// What takes a while before an offer says so first: a file of 256 MiB or more is read whole
    /// to hash it, and a large folder read whole to hash its archive. Meanwhile the chat goes on: a line typed
    /// after the `/send` of 2 GB (sparse: no disk read, but a second or more of hashing) reaches
    /// the room before the offer does, and a quicker `/send` after it is still offered after it.
    @Test func aWaitBeforeAnOfferIsSaid() async throws {
        let source = try Self.folder("source")
        defer { Self.remove(source) }
        let big = source + "/disk.img"
        #expect(FileManager.default.createFile(atPath: big, contents: nil) && truncate(big, 2_000_000_000) == 0)
        try FileManager.default.createDirectory(atPath: source + "/notes", withIntermediateDirectories: true)
        try "a\n".write(toFile: source + "/notes/a.txt", atomically: true, encoding: .utf8)
        try "b\n".write(toFile: source + "/small.txt", atomically: true, encoding: .utf8)
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        room.host.send("/send \(source)/small.txt")
        _ = try await Self.offer(at: room.host, named: "small.txt")
        let bob = try await room.join("bob")
        try "c\n".write(toFile: source + "/after.txt", atomically: true, encoding: .utf8)
        room.host.send("/send \(big)")
        room.host.send("meanwhile")
        room.host.send("/send \(source)/after.txt")
        let said = try await room.host.waitFor("the hashing said") { $0.type == "notice" && ($0["message"] ?? "").hasPrefix("reading disk.img (2.0 GB) to hash it") }
        let line = try await bob.waitFor("the line typed meanwhile") { $0.isMessage(from: "alice", text: "meanwhile") }
        let offered = try await Self.offer(at: bob, named: "disk.img", timeout: .seconds(60))
        #expect(offered.int("size") == 2_000_000_000)
        let lineAt = try #require(bob.outputLines.firstIndex(of: line.line))
        let offeredAt = try #require(bob.outputLines.firstIndex(of: offered.line))
        #expect(lineAt < offeredAt, "the offer held the chat up")
        // A /send after it, quick to hash, is still offered after it: offers keep their order.
        let after = try await Self.offer(at: bob, named: "after.txt")
        #expect(offeredAt < (try #require(bob.outputLines.firstIndex(of: after.line))))
        #expect(after.int("id") == (offered.int("id") ?? 0) + 1)
        let saidAt = try #require(room.host.outputLines.firstIndex(of: said.line))
        let ownOfferAt = try #require(room.host.outputLines.firstIndex(of: try await Self.offer(at: room.host, named: "disk.img").line))
        #expect(saidAt < ownOfferAt)
        // A large folder is read to be hashed too (never packed into a copy), and says so.
        try FileManager.default.createDirectory(atPath: source + "/vm", withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: source + "/vm/disk.img", contents: nil) && truncate(source + "/vm/disk.img", 300_000_000) == 0)
        room.host.send("/send \(source)/vm")
        try await room.host.waitFor("the folder's hashing said") { $0.type == "notice" && ($0["message"] ?? "").hasPrefix("reading vm/ (1 file, 300.0 MB) to hash it") }
        _ = try await Self.offer(at: room.host, named: "vm")
        // A small file or folder is offered without a word first.
        room.host.send("/send \(source)/notes")
        _ = try await Self.offer(at: room.host, named: "notes")
        #expect(!room.host.events.contains { $0.type == "notice" && (($0["message"] ?? "").contains("small.txt") || ($0["message"] ?? "").contains("notes")) })
    }

    /// A sender killed (SIGKILL) halfway and run again with the same key serves its offer again
    /// once it is back in the room (its offers are kept beside its key): `/get` resumes from the
    /// part's length and the whole file arrives. The same for a folder, whose archive the new run
    /// makes again from the folder.
    @Test(arguments: [false, true]) func aFetchResumesAfterTheSenderIsKilled(folder: Bool) async throws {
        let source = try Self.folder("source"), downloads = try Self.folder("bob"), home = try Self.folder("carol")
        defer { Self.remove(source, downloads, home) }
        // A file, or a folder holding it (its archive is made again by the sender's next run).
        let offered = folder ? source + "/film" : source + "/movie.bin"
        let name = folder ? "film" : "movie.bin"
        let file = folder ? offered + "/reels/movie.bin" : offered
        try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Self.randomFile(at: file, size: 6_000_000, seed: 12)
        if folder { try "credits\n".write(toFile: offered + "/credits.txt", atomically: true, encoding: .utf8) }
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        // carol at 500 kB/s: the whole file takes 12 s, and the kill comes at bob's first progress
        // event (about a second in).
        let carolsRun = ["XDG_STATE_HOME": home, "LEVCHAT_FILE_RATE_BYTES": "500000"]
        let carol = try await room.join("carol", environment: carolsRun)
        carol.send("/send \(offered)")
        let offeredAt = try #require(try await Self.offer(at: carol, named: name)["time"])
        let bob = try await room.join("bob", extra: ["--downloads", downloads])
        let id = try #require(try await Self.offer(at: bob, named: name).int("id"))
        bob.send("/get \(id)")
        try await bob.waitFor("a second of the transfer") { $0.type == "transfer" && ($0.int("bytes") ?? 0) > 0 }
        carol.killNow()
        let cut = try await bob.waitFor("the link lost") { $0.type == "transfer_failed" && $0.int("id") == id }
        #expect(cut.bool("resumable") == true, "\(cut)")
        // A file's part is its bytes; a folder's is the folder unpacked as far as it came.
        let kept = folder ? nil : (try? FileManager.default.attributesOfItem(atPath: downloads + "/\(name).part")[.size] as? Int) ?? 0
        if let kept { #expect(kept > 0 && kept < 6_000_000, "the part holds \(kept) bytes") }
        #expect(FileManager.default.fileExists(atPath: home + "/levchat/offers"))

        let carolAgain = try await room.join("carol", environment: carolsRun)
        // Her offer, in the history she is shown as she comes back, is hers (it was shown as
        // anyone's, with a /get of her own file, before her peer knew its node at the start).
        let own = try await carolAgain.waitFor("her own offer") { $0.type == "offer" && $0["name"] == name }
        #expect(own.bool("you") == true && own.bool("history") == true, "\(own)")
        // At the time it was offered, seconds ago, not the time it is shown again.
        #expect(own["time"] == offeredAt, "\(own)")
        try await bob.waitFor("carol back") { $0.type == "presence" && $0["event"] == "joined" && $0["name"] == "carol" }
        // Her offer ended when she was seen to go (if the room saw her go before she came back),
        // and bob is told it is open again.
        if bob.events.contains(where: { $0.type == "offer_ended" && $0.int("id") == id }) {
            let again = try await bob.waitFor("her offer open again") { $0.type == "offer_reopened" && $0.int("id") == id }
            #expect(again["name"] == name && again["from"] == "carol", "\(again)")
        }
        bob.send("/get \(id)")
        let resumed = try await bob.waitFor("the resumed transfer") { $0.type == "transfer" && ($0.int("offset") ?? 0) > 0 }
        if let kept { #expect(resumed.int("offset") == kept) } else { #expect((resumed.int("offset") ?? 0) < 6_000_000) }
        let done = try await Self.received(at: bob, id: id)
        #expect(done["path"] == downloads + "/" + name)
        let arrived = folder ? downloads + "/film/reels/movie.bin" : downloads + "/movie.bin"
        #expect(try Self.sha256(arrived) == (try Self.sha256(file)))
        if folder {
            #expect(try String(contentsOfFile: downloads + "/film/credits.txt", encoding: .utf8) == "credits\n")
        } else {
            #expect(done["sha256"] == (try Self.sha256(file)))
        }
    }

    /// Files of the user's own that are named like parts are never taken for one: an unmarked
    /// `notes.txt.part` (a browser's, say) and a file `album.part` where a folder's part would go.
    /// Both were taken over (the first cut and then deleted when its bytes failed the hash; the
    /// second deleted as an archive that could not be read back); the fetches now take other
    /// names and leave them as they were. Nor is a link replaced: a dangling `notes.txt` (a
    /// plain rename replaced it) stays, and the file arrives as `notes (1).txt`.
    @Test func aUsersOwnPartFilesAreNeverTouched() async throws {
        let source = try Self.folder("source"), downloads = try Self.folder("bob")
        defer { Self.remove(source, downloads) }
        try "the notes\n".write(toFile: source + "/notes.txt", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: source + "/album", withIntermediateDirectories: true)
        try "a photo\n".write(toFile: source + "/album/photo.txt", atomically: true, encoding: .utf8)
        let mine = ["notes.txt.part": "a browser's download, half done\n", "album.part": "mine too\n"]
        for (name, text) in mine { try text.write(toFile: downloads + "/" + name, atomically: false, encoding: .utf8) }
        try FileManager.default.createSymbolicLink(atPath: downloads + "/notes.txt", withDestinationPath: "/nonexistent/notes")
        // Marks need a file system that keeps them; on one that keeps none an unmarked part may
        // be levchat's own (it resumes from it), and only the folder's case is checked.
        let keepsMarks = setxattr(downloads + "/album.part", "user.levchat.test", "x", 1, 0) == 0
        if keepsMarks { _ = removexattr(downloads + "/album.part", "user.levchat.test") }
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob", extra: ["--downloads", downloads])
        room.host.send("/send \(source)/notes.txt")
        let notes = try #require(try await Self.offer(at: bob, named: "notes.txt").int("id"))
        room.host.send("/send \(source)/album")
        let album = try #require(try await Self.offer(at: bob, named: "album").int("id"))
        for id in [notes, album] { bob.send("/get \(id)") }
        let gotNotes = try await Self.received(at: bob, id: notes), gotAlbum = try await Self.received(at: bob, id: album)
        #expect(gotNotes["path"] == downloads + "/notes (1).txt" && gotAlbum["path"] == downloads + "/album")
        #expect(try String(contentsOfFile: downloads + "/notes (1).txt", encoding: .utf8) == "the notes\n")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: downloads + "/notes.txt") == "/nonexistent/notes")
        #expect(try String(contentsOfFile: downloads + "/album/photo.txt", encoding: .utf8) == "a photo\n")
        for (name, text) in mine where keepsMarks || name == "album.part" {
            #expect(try String(contentsOfFile: downloads + "/" + name, encoding: .utf8) == text, "\(name)")
        }
    }

    /// Two offers of the same name (alice's and carol's photo.jpg) are fetched at once, each into
    /// a part of its own: a part cut short keeps to its own offer (its mark says which), so the
    /// other photo does not resume from it but takes `photo (1).jpg.part`, while the first resumes
    /// from where it stopped. Both arrive whole, as `photo.jpg` and `photo (1).jpg`.
    @Test func twoOffersOfOneNameEachKeepTheirOwnPart() async throws {
        let source = try Self.folder("source"), downloads = try Self.folder("bob")
        defer { Self.remove(source, downloads) }
        try FileManager.default.createDirectory(atPath: source + "/a", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: source + "/c", withIntermediateDirectories: true)
        try Self.randomFile(at: source + "/a/photo.jpg", size: 3_000_000, seed: 21)
        try Self.randomFile(at: source + "/c/photo.jpg", size: 3_000_000, seed: 22)
        // 10 s a photo: the cancel, sent at the first progress event (about a second in), comes
        // well before the end even on a loaded machine (at 1 MB/s, 3 s a photo, a fresh CI
        // machine once got the whole photo before the cancel came).
        let slow = ["LEVCHAT_FILE_RATE_BYTES": "300000"]
        let room = try await LoopbackRoom(environment: slow)
        defer { room.stopAll() }
        let carol = try await room.join("carol", environment: slow)
        let bob = try await room.join("bob", extra: ["--downloads", downloads])
        room.host.send("/send \(source)/a/photo.jpg")
        let first = try #require(try await Self.offer(at: bob, named: "photo.jpg").int("id"))
        carol.send("/send \(source)/c/photo.jpg")
        let second = try await bob.waitFor("carol's photo") { $0.type == "offer" && $0["name"] == "photo.jpg" && $0.int("id") != first }
        let other = try #require(second.int("id"))

        bob.send("/get \(first)")
        try await bob.waitFor("a second of alice's photo") { $0.type == "transfer" && $0.int("id") == first && ($0.int("bytes") ?? 0) > 0 }
        bob.send("/cancel \(first)")
        try await bob.waitFor("alice's photo cancelled") { $0.type == "cancelled" && $0.int("id") == first }
        let kept = (try? FileManager.default.attributesOfItem(atPath: downloads + "/photo.jpg.part")[.size] as? Int) ?? 0
        #expect(kept > 0 && kept < 3_000_000, "the part holds \(kept) bytes")

        bob.send("/get \(other)")
        bob.send("/get \(first)")
        let fresh = try await bob.waitFor("carol's photo starts") { $0.type == "transfer" && $0.int("id") == other && $0.int("offset") != nil }
        #expect(fresh.int("offset") == 0, "carol's photo resumed from alice's part: \(fresh)")
        let resumed = try await bob.waitFor("alice's photo resumes") { $0.type == "transfer" && $0.int("id") == first && ($0.int("offset") ?? 0) > 0 }
        #expect(resumed.int("offset") == kept)
        let alices = try await Self.received(at: bob, id: first), carols = try await Self.received(at: bob, id: other)
        #expect(alices["sha256"] == (try Self.sha256(source + "/a/photo.jpg")))
        #expect(carols["sha256"] == (try Self.sha256(source + "/c/photo.jpg")))
        #expect(try Self.sha256(try #require(alices["path"])) == (try Self.sha256(source + "/a/photo.jpg")))
        #expect(try Self.sha256(try #require(carols["path"])) == (try Self.sha256(source + "/c/photo.jpg")))
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: downloads)) == ["photo.jpg", "photo (1).jpg"])
    }

    /// Names from the network land inside the downloads folder, made safe; an existing file is
    /// never overwritten.
    @Test func namesAreMadeSafeAndNothingIsOverwritten() async throws {
        let source = try Self.folder("source"), downloads = try Self.folder("bob")
        defer { Self.remove(source, downloads) }
        // Dots and a space before a dot (`. .profile` became the hidden `.profile` until
        // 2026-12-07), an escape, a bidi override and a tab.
        let hostile = ". .\u{1B}[31m\u{202E}evil\t.profile"
        try "hostile\n".write(toFile: source + "/" + hostile, atomically: true, encoding: .utf8)
        try "new notes\n".write(toFile: source + "/notes.txt", atomically: true, encoding: .utf8)
        try "old notes\n".write(toFile: downloads + "/notes.txt", atomically: true, encoding: .utf8)
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob", extra: ["--downloads", downloads])
        room.host.send(#"/send "\#(source)/\#(hostile)""#)
        room.host.send("/send \(source)/notes.txt")
        let first = try await bob.waitFor("the hostile offer") { $0.type == "offer" && $0.int("id") == 1 }
        _ = try await Self.offer(at: bob, named: "notes.txt")
        #expect(first["name"]?.contains("\u{1B}") == false, "JSON output is sanitized: \(first)")
        // A folder named in /get that is not there is said so, and not made.
        bob.send("/get 2 \(downloads)/Dowloads")
        let refused = try await bob.waitFor("no such folder") { $0.type == "notice" && ($0["message"] ?? "").contains("there is no folder") }
        #expect(refused["message"] == "cannot get notes.txt: there is no folder \(downloads)/Dowloads (make it first, or leave it out for the downloads folder)")
        bob.send("/get 1")
        bob.send("/get 2")
        let hostileDone = try await Self.received(at: bob, id: 1)
        let notesDone = try await Self.received(at: bob, id: 2)
        let safePath = try #require(hostileDone["path"])
        #expect(safePath == downloads + "/" + SafeFileName.make(hostile))
        #expect(!safePath.dropFirst(downloads.count + 1).hasPrefix(".") && !safePath.contains("\t") && !safePath.contains("\u{1B}"), "\(safePath)")
        #expect(try String(contentsOfFile: safePath, encoding: .utf8) == "hostile\n")
        #expect(notesDone["path"] == downloads + "/notes (1).txt")
        #expect(try String(contentsOfFile: downloads + "/notes.txt", encoding: .utf8) == "old notes\n")
        #expect(try String(contentsOfFile: downloads + "/notes (1).txt", encoding: .utf8) == "new notes\n")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: downloads)) == ["notes.txt", "notes (1).txt", SafeFileName.make(hostile)])
    }

    /// A folder with nested folders (an empty one, a file of 3 MB; a link and hidden entries that
    /// are left out) arrives whole under a new folder of its name, and a second copy beside it
    /// gets ` (1)`.
    @Test func aFolderArrivesWhole() async throws {
        let source = try Self.folder("source"), downloads = try Self.folder("bob")
        defer { Self.remove(source, downloads) }
        let root = source + "/holiday photos"
        try FileManager.default.createDirectory(atPath: root + "/day 1/morning", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/day 2", withIntermediateDirectories: true)
        try "list\n".write(toFile: root + "/index.txt", atomically: true, encoding: .utf8)
        // A script stays one (as tar keeps it), but never set-id.
        try "#!/bin/sh\necho slideshow\n".write(toFile: root + "/show.sh", atomically: true, encoding: .utf8)
        #expect(chmod(root + "/show.sh", 0o4755) == 0)
        try Self.randomFile(at: root + "/day 1/morning/beach.raw", size: 3_000_000, seed: 4)
        try FileManager.default.createSymbolicLink(atPath: root + "/day 1/outside", withDestinationPath: "/etc/passwd")
        // Hidden entries stay home: often settings and keys, and the receiver would not keep
        // their names anyway.
        try FileManager.default.createDirectory(atPath: root + "/.git", withIntermediateDirectories: true)
        try "[core]\n".write(toFile: root + "/.git/config", atomically: true, encoding: .utf8)
        try "TOKEN=secret\n".write(toFile: root + "/day 2/.env", atomically: true, encoding: .utf8)
        // The sender's temporary directory: no archive is ever there (it is made as it is read).
        let temporary = try Self.folder("tmp")
        defer { Self.remove(temporary) }
        let room = try await LoopbackRoom(environment: ["TMPDIR": temporary])
        defer { room.stopAll() }
        let bob = try await room.join("bob", extra: ["--downloads", downloads])
        room.host.send(#"/send "\#(root)""#)
        let leftOut = try await room.host.waitFor("what is left out") { $0.type == "notice" && ($0["message"] ?? "").hasPrefix("left out of holiday photos/") }
        #expect(leftOut["message"] == "left out of holiday photos/: 2 hidden entries (a name starting with a dot, as settings and keys have); "
                + "1 entry that is not a folder or a regular file you can read (links, devices)")
        let offer = try await Self.offer(at: bob, named: "holiday photos")
        #expect(offer.bool("folder") == true)
        bob.send("/get 1")
        let done = try await Self.received(at: bob, id: 1)
        #expect(done["path"] == downloads + "/holiday photos")
        let arrived = downloads + "/holiday photos"
        #expect(try String(contentsOfFile: arrived + "/index.txt", encoding: .utf8) == "list\n")
        #expect(try Self.sha256(arrived + "/day 1/morning/beach.raw") == (try Self.sha256(root + "/day 1/morning/beach.raw")))
        var isFolder: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: arrived + "/day 2", isDirectory: &isFolder) && isFolder.boolValue)
        #expect(!FileManager.default.fileExists(atPath: arrived + "/day 1/outside"))
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: arrived)) == ["day 1", "day 2", "index.txt", "show.sh"])
        let umask = try Self.umask()
        var status = stat()
        #expect(stat(arrived + "/show.sh", &status) == 0 && status.st_mode & 0o7777 == 0o777 & ~umask, "\(String(status.st_mode, radix: 8))")
        #expect(stat(arrived + "/index.txt", &status) == 0 && status.st_mode & 0o7777 == 0o666 & ~umask, "\(String(status.st_mode, radix: 8))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: arrived + "/day 2").isEmpty)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: downloads)) == ["holiday photos"])
        bob.send("/get 1")
        let again = try await bob.waitFor("the second copy") { $0.type == "received" && $0["path"] == downloads + "/holiday photos (1)" }
        #expect(again.int("id") == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: temporary).isEmpty, "the archive has a name in TMPDIR")
    }

    /// A careless `/send` of a home folder does not hand the room the sender's private key: its
    /// levchat state folder is left out of any folder sent (even where `XDG_STATE_HOME` puts it
    /// outside a hidden folder), and neither that folder nor a file in it is offered at all.
    @Test func theSendersOwnKeyIsNeverSent() async throws {
        let home = try Self.folder("home"), downloads = try Self.folder("bob")
        defer { Self.remove(home, downloads) }
        try "notes\n".write(toFile: home + "/notes.txt", atomically: true, encoding: .utf8)
        let room = try await LoopbackRoom(environment: ["HOME": home, "XDG_STATE_HOME": home + "/state"])
        defer { room.stopAll() }
        let identity = home + "/state/levchat/identity"
        #expect(FileManager.default.fileExists(atPath: identity), "the host made its key there")
        let bob = try await room.join("bob", extra: ["--downloads", downloads])
        for refused in [identity, home + "/state/levchat", home + "/state/levchat/"] {
            room.host.send(#"/send "\#(refused)""#)
            try await room.host.waitFor("\(refused) refused") {
                $0.type == "notice" && $0["message"] == "cannot send \(refused): it is levchat's own state (your private key, known_peers, offers), which is never sent"
            }
        }
        // The same through a link to the key from elsewhere.
        try FileManager.default.createSymbolicLink(atPath: downloads + "/key", withDestinationPath: identity)
        room.host.send("/send \(downloads)/key")
        try await room.host.waitFor("the link's key refused") { $0.type == "notice" && ($0["message"] ?? "").hasPrefix("cannot send \(downloads)/key: it is levchat's own state") }
        try FileManager.default.removeItem(atPath: downloads + "/key")
        room.host.send(#"/send "\#(home)""#)
        let leftOut = try await room.host.waitFor("what is left out") { $0.type == "notice" && ($0["message"] ?? "").hasPrefix("left out of ") }
        #expect(leftOut["message"]?.hasSuffix("/: your levchat identity's folder") == true, "\(leftOut)")
        let name = String(home.split(separator: "/").last ?? "")
        let offer = try await Self.offer(at: bob, named: name)
        bob.send("/get \(try #require(offer.int("id")))")
        let done = try await Self.received(at: bob, id: try #require(offer.int("id")))
        let arrived = try #require(done["path"])
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: arrived)) == ["notes.txt", "state"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: arrived + "/state").isEmpty)
        #expect(!room.host.events.contains { $0.type == "offer" && $0["name"] == "identity" })
    }

    /// Past four fetches at once, a `/get` waits its turn and starts when one ends; `/cancel`
    /// takes a waiting one off. The first four are 50 MB at 100 kB/s, so they hold their places
    /// for minutes whatever the machine's speed, until the test cancels one.
    @Test func fetchesPastTheFourthWaitTheirTurn() async throws {
        let source = try Self.folder("source"), downloads = try Self.folder("bob")
        defer { Self.remove(source, downloads) }
        let room = try await LoopbackRoom(environment: ["LEVCHAT_FILE_RATE_BYTES": "100000"])
        defer { room.stopAll() }
        let bob = try await room.join("bob", extra: ["--downloads", downloads])
        for n in 1...6 {
            try Self.randomFile(at: source + "/f\(n).bin", size: n <= 4 ? 50_000_000 : 100_000, seed: UInt64(n))
            room.host.send("/send \(source)/f\(n).bin")
            _ = try await Self.offer(at: bob, named: "f\(n).bin")
        }
        for n in 1...6 { bob.send("/get \(n)") }
        for n in 5...6 {
            try await bob.waitFor("offer \(n) waiting") { $0.type == "notice" && ($0["message"] ?? "").hasPrefix("offer \(n) waits its turn") }
        }
        bob.send("/cancel 6")
        try await bob.waitFor("the waiting one cancelled") { $0.type == "cancelled" && $0.int("id") == 6 }
        #expect(!bob.events.contains { $0.type == "transfer" && [5, 6].contains($0.int("id")) }, "a waiting fetch started early")
        // One place frees: the first waiting one (5) starts and arrives; 6 never starts.
        bob.send("/cancel 1")
        try await bob.waitFor("offer 1 cancelled") { $0.type == "cancelled" && $0.int("id") == 1 }
        let done = try await Self.received(at: bob, id: 5)
        #expect(try Self.sha256(try #require(done["path"])) == (try Self.sha256(source + "/f5.bin")))
        #expect(!bob.events.contains { $0.type == "transfer" && $0.int("id") == 6 })
        for n in 2...4 { bob.send("/cancel \(n)") }
        for n in 2...4 { try await bob.waitFor("offer \(n) cancelled") { $0.type == "cancelled" && $0.int("id") == n } }
        // What was cancelled keeps its part, unless nothing had come yet (no empty part is left).
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: downloads))
        #expect(left.contains("f5.bin") && left.isSubset(of: ["f1.bin.part", "f2.bin.part", "f3.bin.part", "f4.bin.part", "f5.bin"]), "\(left)")
        for part in left.filter({ $0.hasSuffix(".part") }) {
            #expect(((try? FileManager.default.attributesOfItem(atPath: downloads + "/" + part)[.size] as? Int) ?? 0) > 0, "\(part) is empty")
        }
    }

    /// `/cancel` on either side stops the transfer; the part stays for a later `/get`.
    @Test func cancelFromEitherSide() async throws {
        let source = try Self.folder("source"), downloads = try Self.folder("bob")
        defer { Self.remove(source, downloads) }
        let file = source + "/slow.bin"
        try Self.randomFile(at: file, size: 20_000_000, seed: 5)
        let room = try await LoopbackRoom(environment: ["LEVCHAT_FILE_RATE_BYTES": "1000000"])
        defer { room.stopAll() }
        let bob = try await room.join("bob", extra: ["--downloads", downloads])
        room.host.send("/send \(file)")
        _ = try await Self.offer(at: bob, named: "slow.bin")
        bob.send("/get 1")
        try await bob.waitFor("bytes arriving") { $0.type == "transfer" && ($0.int("bytes") ?? 0) > 0 }
        // The sender sees its side of it: progress to bob, and that it stopped when bob cancelled.
        let going = try await room.host.waitFor("alice's progress") {
            $0.type == "transfer" && $0.int("id") == 1 && $0["to"] == "bob" && ($0.int("bytes") ?? 0) > 0
        }
        #expect(going.int("size") == 20_000_000)
        bob.send("/cancel 1")
        try await bob.waitFor("bob's cancel") { $0.type == "cancelled" && $0.int("id") == 1 }
        let stopped = try await room.host.waitFor("alice told it stopped") { $0.type == "send_stopped" && $0.int("id") == 1 && $0["to"] == "bob" }
        #expect((stopped.int("bytes") ?? 0) >= (going.int("bytes") ?? 0) && (stopped.int("bytes") ?? 0) < 20_000_000, "\(stopped)")
        let part = downloads + "/slow.bin.part"
        #expect(FileManager.default.fileExists(atPath: part))
        bob.send("/get 1")
        let resumed = try await bob.waitFor("the resumed transfer") { $0.type == "transfer" && ($0.int("offset") ?? 0) > 0 }
        #expect(resumed.int("size") == 20_000_000)
        // Bob says where it resumes before it reaches alice; only bytes past that point mean
        // alice is serving it (a cancel before that finds nothing under way there, and says so).
        let from = try #require(resumed.int("offset"))
        try await bob.waitFor("bytes arriving again") { $0.type == "transfer" && ($0.int("bytes") ?? 0) > from }
        room.host.send("/cancel 1")
        try await room.host.waitFor("alice's cancel") { $0.type == "cancelled" && $0.int("id") == 1 }
        let failed = try await bob.waitFor("bob told") { $0.type == "transfer_failed" && $0.int("id") == 1 }
        #expect(failed.bool("resumable") == true)
        // Told it was alice's doing, not a lost link.
        #expect(failed["message"]?.hasPrefix("alice cancelled sending it at ") == true, "\(failed)")
        #expect(FileManager.default.fileExists(atPath: part))
        #expect(!FileManager.default.fileExists(atPath: downloads + "/slow.bin"))
    }

    /// `/cancel` alone, with no `/send` being read, stops the one transfer under way, on either
    /// side, as `/cancel ID` does; with two under way it names them and stops neither.
    @Test func cancelAloneStopsTheOnlyTransfer() async throws {
        let source = try Self.folder("source"), downloads = try Self.folder("bob")
        defer { Self.remove(source, downloads) }
        try Self.randomFile(at: source + "/one.bin", size: 20_000_000, seed: 21)
        try Self.randomFile(at: source + "/two.bin", size: 20_000_000, seed: 22)
        // 500 kB/s: each file takes 40 s, far more than the steps below on a slow machine.
        let room = try await LoopbackRoom(environment: ["LEVCHAT_FILE_RATE_BYTES": "500000"])
        defer { room.stopAll() }
        let bob = try await room.join("bob", extra: ["--downloads", downloads])
        room.host.send("/send \(source)/one.bin")
        room.host.send("/send \(source)/two.bin")
        _ = try await Self.offer(at: bob, named: "two.bin")
        func notice(_ text: String) -> (Event) -> Bool { { $0.type == "notice" && $0["message"] == text } }

        bob.send("/cancel")
        _ = try await bob.waitFor("nothing to cancel", notice("nothing to cancel: no /send is being read and no transfer is under way"))
        bob.send("/get 1")
        try await bob.waitFor("bytes arriving") { $0.type == "transfer" && $0.int("id") == 1 && ($0.int("bytes") ?? 0) > 0 }
        bob.send("/cancel")
        try await bob.waitFor("bob's cancel") { $0.type == "cancelled" && $0.int("id") == 1 }
        let stopped = try await room.host.waitFor("alice told it stopped") { $0.type == "send_stopped" && $0.int("id") == 1 }

        bob.send("/get 1")
        bob.send("/get 2")
        // Both served again: 1 past where it stopped (its earlier progress does not count), and 2.
        let stoppedAt = try #require(stopped.int("bytes"))
        try await room.host.waitFor("alice serving 1 again") {
            $0.type == "transfer" && $0.int("id") == 1 && $0["to"] == "bob" && ($0.int("bytes") ?? 0) > stoppedAt
        }
        try await room.host.waitFor("alice serving 2") { $0.type == "transfer" && $0.int("id") == 2 && $0["to"] == "bob" }
        bob.send("/cancel")
        _ = try await bob.waitFor("two named", notice("2 transfers are under way (offers 1, 2): /cancel ID stops one"))
        room.host.send("/cancel")
        _ = try await room.host.waitFor("two named at alice", notice("2 transfers are under way (offers 1, 2): /cancel ID stops one"))
        #expect(!bob.events.contains { $0.type == "cancelled" && $0.int("id") == 2 })
        bob.send("/cancel 2")
        try await bob.waitFor("bob's cancel of 2") { $0.type == "cancelled" && $0.int("id") == 2 }
        try await room.host.waitFor("alice told 2 stopped") { $0.type == "send_stopped" && $0.int("id") == 2 }
        // Now alice serves one transfer only: hers to stop.
        room.host.send("/cancel")
        try await room.host.waitFor("alice's cancel") { $0.type == "cancelled" && $0.int("id") == 1 }
        let failed = try await bob.waitFor("bob told") { $0.type == "transfer_failed" && $0.int("id") == 1 }
        #expect(failed["message"]?.hasPrefix("alice cancelled sending it at ") == true, "\(failed)")
        #expect(!FileManager.default.fileExists(atPath: downloads + "/one.bin") && !FileManager.default.fileExists(atPath: downloads + "/two.bin"))
    }

    /// Leaving the room in the middle of transfers says what stopped: the receiver hears where
    /// its download stopped (resumable, the part kept), the sender that its file was still going
    /// out to someone.
    @Test func leavingMidTransferSaysWhatStopped() async throws {
        let source = try Self.folder("source"), downloads = try Self.folder("bob"), davesDownloads = try Self.folder("dave")
        defer { Self.remove(source, downloads, davesDownloads) }
        try Self.randomFile(at: source + "/slow.bin", size: 20_000_000, seed: 13)
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let carol = try await room.join("carol", environment: ["LEVCHAT_FILE_RATE_BYTES": "1000000"])
        let bob = try await room.join("bob", extra: ["--downloads", downloads])
        let dave = try await room.join("dave", extra: ["--downloads", davesDownloads])
        carol.send("/send \(source)/slow.bin")
        let id = try #require(try await Self.offer(at: bob, named: "slow.bin").int("id"))
        _ = try await Self.offer(at: dave, named: "slow.bin")
        bob.send("/get \(id)")
        dave.send("/get \(id)")
        try await bob.waitFor("bytes arriving") { $0.type == "transfer" && ($0.int("bytes") ?? 0) > 0 }
        try await dave.waitFor("bytes arriving") { $0.type == "transfer" && ($0.int("bytes") ?? 0) > 0 }
        bob.send("/quit")
        let stopped = try await bob.waitFor("bob told") { $0.type == "transfer_failed" && $0.int("id") == id }
        #expect(stopped.bool("resumable") == true)
        #expect(stopped["message"]?.contains("stopped when you left the room") == true, "\(stopped)")
        #expect(FileManager.default.fileExists(atPath: downloads + "/slow.bin.part"))
        // carol sees bob's link end (so one transfer is left, dave's), then leaves.
        try await carol.waitFor("bob's link ended") { $0.type == "send_stopped" && $0["to"] == "bob" }
        carol.send("/quit")
        let told = try await carol.waitFor("carol told") { $0.type == "notice" && ($0["message"] ?? "").contains("of your files to others stopped") }
        #expect(told["message"]?.hasPrefix("1 transfer ") == true, "\(told)")
        // Said once: not again as a link to dave that ended.
        #expect(try await carol.waitForExit() == 0)
        #expect(!carol.events.contains { $0.type == "send_stopped" && $0["to"] == "dave" }, "\(carol.events.filter { $0.type == "send_stopped" })")
    }

    /// Bytes other than the offered ones (the file changed after the offer, same size) are not
    /// kept: the hash does not match, the part is deleted and nothing is renamed.
    @Test func otherBytesThanOfferedAreNotKept() async throws {
        let source = try Self.folder("source"), downloads = try Self.folder("bob")
        defer { Self.remove(source, downloads) }
        let file = source + "/report.pdf"
        try Self.randomFile(at: file, size: 300_000, seed: 1)
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob", extra: ["--downloads", downloads])
        room.host.send("/send \(file)")
        _ = try await Self.offer(at: bob, named: "report.pdf")
        try Self.randomFile(at: file, size: 300_000, seed: 2)
        bob.send("/get 1")
        let failed = try await bob.waitFor("the mismatch") { $0.type == "transfer_failed" && $0.int("id") == 1 }
        #expect(failed["message"]?.contains("SHA-256") == true, "\(failed)")
        #expect(failed.bool("resumable") == false)
        #expect(try FileManager.default.contentsOfDirectory(atPath: downloads).isEmpty)
        // The sender hears it from bob's `done`, and does not say it sent the file.
        try await room.host.waitFor("the sender told") { $0.type == "notice" && ($0["message"] ?? "").contains("bob got other bytes than report.pdf") }
        #expect(!room.host.events.contains { $0.type == "sent" })
    }

    /// What a careless sender does to a file after offering it, and what it offers by mistake: a
    /// file that grew since (a log still being written) is sent as offered, its first bytes; one
    /// that shrank is refused for good, on both sides, and no empty part is left; a folder given as
    /// `DIR/.` is offered under its own name; a file of /proc, whose size says 0, is not offered.
    @Test func filesThatChangeOrLieAboutTheirSize() async throws {
        let source = try Self.folder("source"), downloads = try Self.folder("bob")
        defer { Self.remove(source, downloads) }
        let log = source + "/server.log", shrinking = source + "/notes.txt"
        try Self.randomFile(at: log, size: 100_000, seed: 5)
        try Self.randomFile(at: shrinking, size: 100_000, seed: 6)
        let offered = try Self.sha256(log)
        try FileManager.default.createDirectory(atPath: source + "/album/inner", withIntermediateDirectories: true)
        try "photo\n".write(toFile: source + "/album/inner/a.txt", atomically: true, encoding: .utf8)
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob", extra: ["--downloads", downloads])
        room.host.send("/send \(log)")
        _ = try await Self.offer(at: bob, named: "server.log")
        room.host.send("/send \(shrinking)")
        _ = try await Self.offer(at: bob, named: "notes.txt")
        room.host.send("/send \(source)/album/.")
        let folder = try await Self.offer(at: bob, named: "album")
        #expect(folder.bool("folder") == true)
        try FileManager.default.createDirectory(atPath: source + "/shelf", withIntermediateDirectories: true)
        try "a\n".write(toFile: source + "/shelf/a.txt", atomically: true, encoding: .utf8)
        try Self.randomFile(at: source + "/shelf/big.bin", size: 300_000, seed: 7)
        room.host.send("/send \(source)/shelf")
        _ = try await Self.offer(at: bob, named: "shelf")
        room.host.send("/send /proc/self/status")
        let refused = try await room.host.waitFor("/proc refused") { $0.type == "notice" && ($0["message"] ?? "").contains("cannot send /proc/self/status") }
        #expect(refused["message"]?.contains("/proc and /sys") == true, "\(refused)")

        let more = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try more.seekToEnd()
        try more.write(contentsOf: Data(repeating: 7, count: 50_000))
        try more.close()
        #expect(truncate(shrinking, 40_000) == 0)

        bob.send("/get 1")
        let grown = try await Self.received(at: bob, id: 1)
        #expect(grown["sha256"] == offered)
        #expect(try Self.sha256(downloads + "/server.log") == offered)

        bob.send("/get 2")
        let failed = try await bob.waitFor("the shrunk file refused") { $0.type == "transfer_failed" && $0.int("id") == 2 }
        #expect(failed["message"]?.contains("changed since it was offered") == true, "\(failed)")
        #expect(failed.bool("resumable") == false)
        try await room.host.waitFor("the sender told") { $0.type == "notice" && ($0["message"] ?? "").contains("notes.txt is shorter than when you offered it") }

        bob.send("/get 3")
        let album = try await Self.received(at: bob, id: 3)
        #expect(album["path"] == downloads + "/album")
        #expect(try String(contentsOfFile: downloads + "/album/inner/a.txt", encoding: .utf8) == "photo\n")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: downloads)) == ["server.log", "album"])

        // A file of an offered folder that shrank: found while the archive is read, mid-transfer;
        // the fetcher stops for good (a /get could only meet it again), and both sides say why.
        #expect(truncate(source + "/shelf/big.bin", 1_000) == 0)
        bob.send("/get 4")
        let shelf = try await bob.waitFor("the changed folder refused") { $0.type == "transfer_failed" && $0.int("id") == 4 }
        #expect(shelf["message"]?.contains("the folder changed since it was offered") == true, "\(shelf)")
        #expect(shelf.bool("resumable") == false)
        let stopped = try await room.host.waitFor("the sender told") { $0.type == "send_stopped" && $0["name"] == "shelf" }
        #expect(stopped["message"] == "the folder changed since you offered it (\(source)/shelf/big.bin is shorter than it was); /send it again",
                "\(stopped)")

        // A file deleted after its offer: the fetcher hears it is gone, and the sender, who alone
        // can put it back, hears that someone asked for it.
        let moved = source + "/moved.txt"
        try "soon gone\n".write(toFile: moved, atomically: true, encoding: .utf8)
        room.host.send("/send \(moved)")
        let movedID = try #require(try await Self.offer(at: bob, named: "moved.txt").int("id"))
        try FileManager.default.removeItem(atPath: moved)
        bob.send("/get \(movedID)")
        let gone = try await bob.waitFor("the deleted file refused") { $0.type == "transfer_failed" && $0.int("id") == movedID }
        #expect(gone["message"]?.contains("the file is gone from the sender's disk") == true, "\(gone)")
        _ = try await room.host.waitFor("the sender told") {
            $0.type == "notice" && $0["message"] == "bob asked for moved.txt, which cannot be read now (it is not at \(moved) any more); put it back, or /send it again"
        }
        // Asked again: refused again, but the sender is told once (a member asking in a loop
        // must not fill its screen).
        bob.send("/get \(movedID)")
        _ = try await bob.waitFor("refused again") { _ in bob.events.filter { $0.type == "transfer_failed" && $0.int("id") == movedID }.count == 2 }
        room.host.send("/files")
        _ = try await room.host.waitFor("a later answer") { $0.type == "files" }
        #expect(room.host.events.filter { ($0["message"] ?? "").hasPrefix("bob asked for moved.txt") }.count == 1)
    }

    /// `sent` means the fetcher said it has every byte, with their hash: a fetcher (a raw member)
    /// that reads the whole file and closes without `done` is not a file delivered; one that
    /// answers `done` with the offer's hash is, and `sent` names it by its key's proof.
    @Test func sentWaitsForTheFetchersDone() async throws {
        let source = try Self.folder("source")
        defer { Self.remove(source) }
        let file = source + "/notes.bin"
        try Self.randomFile(at: file, size: 200_000, seed: 3)
        let room = try await LoopbackRoom(environment: ["LEVCHAT_DEAD_AFTER_MS": "60000", "LEVCHAT_LOG": "info"])
        defer { room.stopAll() }
        let mallory = try RawClient(port: room.port)
        #expect(try mallory.handshake(code: room.code) == nil)
        _ = try mallory.join(name: "mallory")
        let grant = try #require(mallory.welcome?.grant)
        room.host.send("/send \(file)")
        guard case .msg(let record)? = try mallory.readMessage(until: { if case .msg(let r) = $0 { r.chatKind == .offer } else { false } }),
              let offer = FileOffer(text: record.text) else {
            Issue.record("mallory saw no offer record")
            return
        }
        for answers in [false, true] {
            let link = try RawClient(port: room.port)
            #expect(try link.handshake(code: room.code, grant: grant) == nil)
            link.sendFrame(try link.seal(.fetch(mallory.identity.fetch(offer.file, offset: 0, room: grant.roomID, binding: link.binding))))
            guard case .file(let start)? = try link.nextMessage() else {
                Issue.record("no file answer")
                return
            }
            var hasher = FileHasher()
            var got = 0
            while got < start.size, case .data(let bytes)? = try link.nextMessage() {
                hasher.update(bytes)
                got += bytes.count
            }
            #expect(got == offer.size && hasher.hex() == offer.sha256)
            if answers {
                link.sendFrame(try link.seal(.done(FileDone(sha256: hasher.hex()))))
                let sent = try await room.host.waitFor("sent to mallory") { $0.type == "sent" && $0["name"] == "notes.bin" }
                #expect(sent["to"] == "mallory")
            } else {
                link.shutdownWrite()
                try await room.host.waitForDiagnostic("the link ended before the fetcher said it had every byte")
                #expect(!room.host.events.contains { $0.type == "sent" })
            }
            withExtendedLifetime(link) {}
        }
        withExtendedLifetime(mallory) {}
    }

    /// A fake member that offers 100,000 bytes and then sends more on the fetch (the right bytes,
    /// and 100 past the end in the same record): the fetcher cuts it off, says so, and keeps
    /// neither the part nor a file.
    @Test func aSenderThatSendsMoreThanOfferedIsCutOff() async throws {
        let downloads = try Self.folder("bob")
        defer { Self.remove(downloads) }
        // A long dead time: the fake member answers no ping.
        let room = try await LoopbackRoom(environment: ["LEVCHAT_DEAD_AFTER_MS": "60000"])
        defer { room.stopAll() }
        let bob = try await room.join("bob", extra: ["--downloads", downloads], environment: ["LEVCHAT_DEAD_AFTER_MS": "60000"])
        let (listener, fakePort) = try BroadcastAttackTests.listen()
        defer { close(listener) }
        // mallory joins last, so the room secret in its welcome is the one bob holds now.
        let mallory = try RawClient(port: room.port)
        #expect(try mallory.handshake(code: room.code) == nil)
        _ = try mallory.join(name: "mallory", listenPort: fakePort)
        let grant = try #require(mallory.welcome?.grant)
        let content = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var hasher = FileHasher()
        hasher.update(content)
        let offer = FileOffer(file: FileOffer.randomToken(), name: "bait.bin", size: content.count, sha256: hasher.hex())
        let chat = Chat(signedBy: mallory.identity, room: grant.roomID, seq: 1, name: "mallory", text: offer.text, kind: .offer)
        mallory.sendFrame(try mallory.seal(.chat(chat)))
        _ = try await Self.offer(at: bob, named: "bait.bin")
        bob.send("/get 1")
        // mallory's listener: the room's handshake by the secret, the fetch, then too much.
        let accepted = accept(listener, nil, nil)
        #expect(accepted >= 0)
        let link = RawClient(accepted: accepted)
        defer { withExtendedLifetime((link, mallory)) {} }
        var handshake = HostHandshake(code: try RoomCode(parsing: room.code), grant: grant)
        link.sendFrame(try handshake.receiveHello(try #require(link.readFrame())))
        var (reply, ciphers) = try handshake.receiveAuth(try #require(link.readFrame()))
        link.sendFrame(reply)
        guard case .fetch(let fetch) = try WireMessage.decode(try ciphers.opener.open(try #require(link.readFrame()))) else {
            Issue.record("bob sent no fetch")
            return
        }
        #expect(fetch.file == offer.file && fetch.offset == 0)
        link.sendFrame(try ciphers.sealer.seal(WireMessage.file(FileStart(size: content.count, offset: 0)).encoded()))
        link.sendFrame(try ciphers.sealer.seal(WireMessage.data(Array(content[..<60_000])).encoded()))
        link.sendFrame(try ciphers.sealer.seal(WireMessage.data(Array(content[60_000...]) + [UInt8](repeating: 0x41, count: 100)).encoded()))
        let failed = try await bob.waitFor("the cut-off") { $0.type == "transfer_failed" && $0.int("id") == 1 }
        #expect(failed["message"]?.contains("more than the 100000 bytes offered") == true, "\(failed)")
        #expect(failed.bool("resumable") == false)
        #expect(link.waitForClose(), "bob kept the link open")
        #expect(try FileManager.default.contentsOfDirectory(atPath: downloads).isEmpty)
    }

    /// `/send PATH NAME`: the offer reaches carol alone. The host relays it like any record but
    /// neither shows it nor lets its user fetch it; a member that reads the record off the wire
    /// (mallory, a raw client holding the room secret) is refused by the sender, asking with no
    /// proof, with its own key's proof, or with carol's key and its own signature. Carol gets it,
    /// and bob hears that carol did.
    /// `/send DIR/*.txt` offers each file the pattern matches, in order, as a shell would expand
    /// it (to one member too); a pattern that matches nothing, or too much, is one sentence and
    /// offers nothing.
    @Test func aPatternOffersEachFileItMatches() async throws {
        let source = try Self.folder("source")
        defer { Self.remove(source) }
        for name in ["minutes.txt", "agenda.txt", "photo.jpg"] {
            try "\(name)\n".write(toFile: source + "/" + name, atomically: true, encoding: .utf8)
        }
        try FileManager.default.createDirectory(atPath: source + "/many", withIntermediateDirectories: true)
        for index in 1...21 { try "\(index)\n".write(toFile: source + "/many/\(index).txt", atomically: true, encoding: .utf8) }
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob")
        room.host.send("/send \(source)/*.txt")
        let first = try await Self.offer(at: bob, named: "agenda.txt")
        let second = try await Self.offer(at: bob, named: "minutes.txt")
        #expect(try #require(first.int("id")) < #require(second.int("id")))
        room.host.send("/send \(source)/p*o.* bob")
        let photo = try await Self.offer(at: bob, named: "photo.jpg")
        #expect(photo["to"] == "bob")
        room.host.send("/send \(source)/*.pdf")
        _ = try await room.host.waitFor("nothing matched") {
            $0.type == "notice" && $0["message"] == "cannot send \(source)/*.pdf: no file or folder matches it"
        }
        room.host.send("/send \(source)/many/*")
        _ = try await room.host.waitFor("too many") {
            $0.type == "notice" && ($0["message"] ?? "").hasPrefix("cannot send \(source)/many/*: it matches 21 files and folders")
        }
        // Nothing else was offered: a line said after both goes out next.
        room.host.send("after the patterns")
        _ = try await bob.waitFor("the line after") { $0.isMessage(from: "alice", text: "after the patterns") }
        #expect(bob.events.filter { $0.type == "offer" }.count == 3, "\(bob.events.filter { $0.type == "offer" })")
    }

    @Test func anOfferToOneMemberReachesItAlone() async throws {
        let source = try Self.folder("source"), carols = try Self.folder("carol"), alices = try Self.folder("alice")
        defer { Self.remove(source, carols, alices) }
        let file = source + "/for carol.txt"
        try "only for carol\n".write(toFile: file, atomically: true, encoding: .utf8)
        let room = try await LoopbackRoom(environment: ["LEVCHAT_DEAD_AFTER_MS": "60000"])
        defer { room.stopAll() }
        let bob = try await room.join("bob")
        let carol = try await room.join("carol", extra: ["--downloads", carols])
        // mallory joins last, so the room secret in her welcome is the one bob holds now.
        let mallory = try RawClient(port: room.port)
        #expect(try mallory.handshake(code: room.code) == nil)
        _ = try mallory.join(name: "mallory")
        let grant = try #require(mallory.welcome?.grant)
        let bobsEndpoint = try #require(mallory.welcome?.roster.members.first { $0.name == "bob" }?.endpoints.first)
        let bobsPort = try #require(Endpoint.parse(bobsEndpoint)?.port)
        let carolsKey = try #require(mallory.welcome?.roster.members.first { $0.name == "carol" }?.key)
        try await bob.waitFor("mallory in the room") { $0.type == "presence" && $0["name"] == "mallory" }

        bob.send("/send \"\(file)\" Carol")
        let offer = try await carol.waitFor("the offer to carol") { $0.type == "offer" && $0["name"] == "for carol.txt" }
        #expect(offer["to"] == "carol" && offer["from"] == "bob")
        let own = try await bob.waitFor("bob's own offer") { $0.type == "offer" && $0.bool("you") == true }
        #expect(own["to"] == "carol")
        let id = try #require(offer.int("id"))
        // mallory's copy of the record: only the `to` keeps others from fetching it.
        guard case .msg(let record)? = try mallory.readMessage(until: { if case .msg(let r) = $0 { r.chatKind == .offer } else { false } }),
              let token = FileOffer(text: record.text)?.file else {
            Issue.record("mallory saw no offer record")
            return
        }
        for attempt in ["no proof", "her own key", "carol's key"] {
            let link = try RawClient(port: bobsPort)
            #expect(try link.handshake(code: room.code, grant: grant) == nil)
            var fetch = Fetch(file: token, offset: 0)
            if attempt != "no proof" { fetch = mallory.identity.fetch(token, offset: 0, room: grant.roomID, binding: link.binding) }
            if attempt == "carol's key" { fetch.key = carolsKey }
            link.sendFrame(try link.seal(.fetch(fetch)))
            let answer = try link.nextMessage()
            guard case .error(let info)? = answer else {
                Issue.record("bob answered mallory's fetch with \(attempt) with \(String(describing: answer))")
                continue
            }
            #expect(info.code == ErrorCode.noFile.rawValue, "\(attempt)")
        }

        carol.send("/get \(id)")
        let received = try await Self.received(at: carol, id: id)
        #expect(received["path"] == carols + "/for carol.txt")
        #expect(try String(contentsOfFile: carols + "/for carol.txt", encoding: .utf8) == "only for carol\n")
        let sent = try await bob.waitFor("bob's file sent") { $0.type == "sent" && $0["name"] == "for carol.txt" }
        #expect(sent["to"] == "carol")
        // The host saw the record go by and shows nothing of it, lists nothing, fetches nothing.
        room.host.send("/files")
        try await room.host.waitFor("no open offers at the host") { $0.type == "files" && $0.line.contains("\"offers\":[]") }
        room.host.send("/get \(id) \(alices)")
        try await room.host.waitFor("told there is no such offer") { $0.type == "notice" && ($0["message"] ?? "").contains("there is no offer \(id)") }
        #expect(!room.host.events.contains { $0.type == "offer" })
        #expect(try FileManager.default.contentsOfDirectory(atPath: alices).isEmpty)
        // Nobody by that name, or yourself: a sentence, no offer.
        bob.send("/send \"\(file)\" zed")
        try await bob.waitFor("nobody called zed") { $0.type == "notice" && ($0["message"] ?? "").contains("nobody called zed") }
        bob.send("/send \"\(file)\" bob")
        try await bob.waitFor("bob is bob") { $0.type == "notice" && ($0["message"] ?? "").contains("bob is you") }
        withExtendedLifetime(mallory) {}
    }

    /// An offer ends when its sender leaves, and everyone sees that; `/files` lists only open ones.
    @Test func anOfferEndsWithItsSender() async throws {
        let source = try Self.folder("source")
        defer { Self.remove(source) }
        try "x\n".write(toFile: source + "/x.txt", atomically: true, encoding: .utf8)
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob")
        let carol = try await room.join("carol")
        bob.send("/send \(source)/x.txt")
        _ = try await Self.offer(at: carol, named: "x.txt")
        try "for carol\n".write(toFile: source + "/private.txt", atomically: true, encoding: .utf8)
        bob.send("/send \(source)/private.txt carol")
        _ = try await Self.offer(at: carol, named: "private.txt")
        carol.send("/files")
        let open = try await carol.waitFor("the open offers") { $0.type == "files" }
        #expect(open.line.contains("\"name\":\"x.txt\""))
        bob.send("/quit")
        #expect(try await bob.waitForExit() == 0)
        let ended = try await carol.waitFor("the offer's end") { $0.type == "offer_ended" && $0.int("id") == 1 }
        #expect(ended["reason"] == "bob left")
        try await room.host.waitFor("the offer's end at the host") { $0.type == "offer_ended" && $0.int("id") == 1 }
        carol.send("/files")
        try await carol.waitFor("no open offers") { $0.type == "files" && $0.line.contains("\"offers\":[]") }
        carol.send("/get 1")
        try await carol.waitFor("told it ended") { $0.type == "notice" && ($0["message"] ?? "").contains("has ended") }
        // A newcomer does not see it as open either: in the history it is shown on joining, the
        // offer is a thing of the past (it was shown open and ended at once), and the one to
        // carol is not there at all, nor in its /history.
        let dave = try await room.join("dave")
        let joining = dave.events
        #expect(!joining.contains { $0.type == "offer" || $0.type == "offer_ended" }, "\(joining)")
        let pastOffers = joining.filter { $0.type == "message" && $0["kind"] == "offer" }
        #expect(pastOffers.count == 1 && pastOffers.allSatisfy { $0.bool("history") == true && ($0["text"] ?? "").contains("x.txt") }, "\(pastOffers)")
        dave.send("/files")
        try await dave.waitFor("no open offers for dave") { $0.type == "files" && $0.line.contains("\"offers\":[]") }
        dave.send("/history")
        let davesHistory = try await dave.waitFor("dave's /history") { $0.type == "history" }
        #expect(davesHistory.line.contains("x.txt") && !davesHistory.line.contains("private.txt"), "\(davesHistory)")
        carol.send("/history")
        let carolsHistory = try await carol.waitFor("carol's /history") { $0.type == "history" }
        #expect(carolsHistory.line.contains("x.txt") && carolsHistory.line.contains("private.txt"), "\(carolsHistory)")
        // In text: the line /history has for it, no /get.
        let eve = try await room.join("eve", waitForEntry: false, json: false)
        try await eve.waitForOutput("eve has entered the room")
        let lines = eve.outputLines
        #expect(lines.contains { $0.hasSuffix("* bob offered x.txt") }, "\(lines)")
        #expect(!lines.contains { $0.contains("/get") || $0.contains("ended") || $0.contains("private.txt") }, "\(lines)")
    }
}

/// A full disk (Docs/CLI.md, "Files"): the receiver runs in a mount namespace of its own whose
/// downloads folder is a 10 MiB tmpfs (root, as the simulated-LAN tests).
@Suite(.enabled(if: SimulatedLAN.enabled, SimulatedLAN.skipComment), .timeLimit(.minutes(3)))
struct FullDiskTests {
    /// bob joining `room` with its downloads on a tmpfs of `megabytes` in a mount namespace of its
    /// own (unshare execs sh, which mounts the tmpfs there and execs the peer: one pid).
    static func receiver(in room: LoopbackRoom, downloadingTo mountpoint: String, megabytes: Int) throws -> PeerProcess {
        try PeerProcess("bob", ["join", room.code, "--name", "bob", "--peer", room.peerArgument, "--bind", "127.0.0.1",
                                "--json", "--downloads", mountpoint],
                        prefix: ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                                 #"mount -t tmpfs -o size=\#(megabytes)m levchat-test "$0" && exec "$@""#, mountpoint])
    }

    /// A state folder on a full disk: the identity fits in the tmpfs's one page, known_peers and
    /// the list of offers do not. Each is one sentence, once, and the run goes on. It was silent,
    /// and the next run met every key as new, a changed one too.
    @Test func stateThatCannotBeKeptIsSaidOnce() async throws {
        let mountpoint = try FileTransferTests.folder("state"), source = try FileTransferTests.folder("source")
        defer { FileTransferTests.remove(mountpoint, source) }
        try "notes\n".write(toFile: source + "/notes.txt", atomically: true, encoding: .utf8)
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try PeerProcess("bob", ["join", room.code, "--name", "bob", "--peer", room.peerArgument, "--bind", "127.0.0.1", "--json"],
                                  environment: ["XDG_STATE_HOME": mountpoint],
                                  prefix: ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                                           #"mount -t tmpfs -o size=4k levchat-test "$0" && exec "$@""#, mountpoint])
        defer { bob.stop() }
        try await bob.waitFor("bob entering") { $0.type == "entered" }
        try await bob.waitForDiagnostic("cannot keep known_peers at \(mountpoint)/levchat/known_peers (No space left on device)")
        bob.send("/send \(source)/notes.txt")
        try await room.host.waitFor("bob's offer") { $0.type == "offer" && $0["from"] == "bob" }
        try await bob.waitForDiagnostic("cannot keep the list of your offers at \(mountpoint)/levchat/offers (No space left on device)")
        // Once each (carol is a new name to keep, and is not kept either), and the room goes on.
        let carol = try await room.join("carol")
        bob.send("still here")
        try await carol.waitFor("bob's line") { $0.isMessage(from: "bob", text: "still here") }
        // Counted once bob has left: a run's end waits for its saves, so a second failure (carol's
        // name) would have been said by then, not after the count.
        bob.send("/quit")
        #expect(try await bob.waitForExit() == 0)
        #expect(bob.errorText.components(separatedBy: "cannot keep known_peers").count == 2, "\(bob.errorText)")
        #expect(bob.errorText.contains("made your identity"), "\(bob.errorText)")
    }

    /// Makes `peer`'s tmpfs at `mountpoint` `megabytes` large, inside its mount namespace.
    static func grow(_ mountpoint: String, of peer: PeerProcess, to megabytes: Int) async throws {
        let grow = try PeerProcess("nsenter", ["--target", "\(peer.pid)", "--mount", "mount", "-o", "remount,size=\(megabytes)m", mountpoint],
                                   prefix: ["/usr/bin/nsenter"], runsBinary: false)
        defer { grow.stop() }
        #expect(try await grow.waitForExit() == 0, "\(grow.errorText)")
    }

    /// 50 MiB into 10 MiB: the fetch stops with one sentence and keeps its part; once the tmpfs is
    /// made larger, `/get` resumes from the part and the file arrives whole.
    @Test func aFullDiskStopsTheFetchAndItResumesOnceThereIsRoom() async throws {
        let source = try FileTransferTests.folder("source"), mountpoint = try FileTransferTests.folder("tmpfs")
        defer { FileTransferTests.remove(source, mountpoint) }
        let file = source + "/big.bin"
        try FileTransferTests.randomFile(at: file, size: 50 << 20, seed: 3)
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        room.host.send("/send \(file)")
        _ = try await FileTransferTests.offer(at: room.host, named: "big.bin")
        let bob = try Self.receiver(in: room, downloadingTo: mountpoint, megabytes: 10)
        defer { bob.stop() }
        _ = try await FileTransferTests.offer(at: bob, named: "big.bin")
        bob.send("/get 1")
        let full = try await bob.waitFor("the full disk", timeout: .seconds(60)) { $0.type == "transfer_failed" && $0.int("id") == 1 }
        #expect(full["message"]?.contains("the disk is full") == true, "\(full)")
        #expect(full.bool("resumable") == true)
        // The peer's own view of its folder, through its mount namespace.
        let inside = "/proc/\(bob.pid)/root" + mountpoint
        let kept = try #require(try FileManager.default.attributesOfItem(atPath: inside + "/big.bin.part")[.size] as? Int)
        #expect(kept > 0 && kept <= 10 << 20, "the part holds \(kept) bytes")
        try await Self.grow(mountpoint, of: bob, to: 80)
        bob.send("/get 1")
        let resumed = try await bob.waitFor("the resumed transfer") { $0.type == "transfer" && ($0.int("offset") ?? 0) > 0 }
        #expect(resumed.int("offset") == kept)
        _ = try await FileTransferTests.received(at: bob, id: 1)
        #expect(try FileTransferTests.sha256(inside + "/big.bin") == (try FileTransferTests.sha256(file)))
    }

    /// A folder is unpacked as it arrives, into its part (`shelf.part/`): a full disk stops it
    /// like a file, keeps what came, and `/get` resumes once there is room. `big`: two files of
    /// 4 MiB into 6 MiB; else 2,000 files of one byte (2 MB of archive, 8 MB of tmpfs pages) into
    /// 5 MiB.
    @Test(arguments: [true, false]) func aFolderThatFillsTheDiskResumesOnceThereIsRoom(big: Bool) async throws {
        let source = try FileTransferTests.folder("source"), mountpoint = try FileTransferTests.folder("tmpfs")
        defer { FileTransferTests.remove(source, mountpoint) }
        let root = source + "/shelf"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        if big {
            for index in 0..<2 { try FileTransferTests.randomFile(at: root + "/part\(index).bin", size: 4 << 20, seed: UInt64(20 + index)) }
        } else {
            for index in 0..<2_000 { try Data([UInt8(index % 251)]).write(to: URL(fileURLWithPath: root + "/f\(index)")) }
        }
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        room.host.send("/send \(root)")
        let offered = try await FileTransferTests.offer(at: room.host, named: "shelf")
        let bob = try Self.receiver(in: room, downloadingTo: mountpoint, megabytes: big ? 6 : 5)
        defer { bob.stop() }
        _ = try await FileTransferTests.offer(at: bob, named: "shelf")
        bob.send("/get 1")
        let full = try await bob.waitFor("the full disk", timeout: .seconds(60)) { $0.type == "transfer_failed" && $0.int("id") == 1 }
        #expect(full["message"]?.contains("the disk is full") == true, "\(full)")
        #expect(full.bool("resumable") == true)
        let inside = "/proc/\(bob.pid)/root" + mountpoint
        #expect(try FileManager.default.contentsOfDirectory(atPath: inside) == ["shelf.part"])
        try await Self.grow(mountpoint, of: bob, to: 40)
        bob.send("/get 1")
        let resumed = try await bob.waitFor("the resumed transfer") { $0.type == "transfer" && ($0.int("offset") ?? 0) > 0 }
        #expect((resumed.int("offset") ?? 0) < (offered.int("size") ?? 0))
        let done = try await FileTransferTests.received(at: bob, id: 1)
        #expect(done["path"] == mountpoint + "/shelf")
        #expect(try FileManager.default.contentsOfDirectory(atPath: inside) == ["shelf"])
        let names = try FileManager.default.contentsOfDirectory(atPath: inside + "/shelf").sorted()
        #expect(names == (try FileManager.default.contentsOfDirectory(atPath: root).sorted()))
        for name in names.prefix(5) {
            #expect(try FileTransferTests.sha256(inside + "/shelf/" + name) == (try FileTransferTests.sha256(root + "/" + name)))
        }
    }
}
