import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A file offered to the room (Docs/PROTOCOL.md, "Files"): the text of an `offer` record, so its
/// sender's key signs the name, size and SHA-256 like any line, and the host sequences and keeps
/// it like one. `file` is the sender's random token for it, what a `fetch` names.
public struct FileOffer: Codable, Hashable, Sendable {
    public var file: String
    public var name: String
    public var size: Int
    /// SHA-256 of the whole file, 64 lowercase hex digits.
    public var sha256: String
    /// A folder, sent as one ustar archive (`Ustar`) that the receiver unpacks; the size and hash
    /// are the archive's. Absent for a file.
    public var folder: Bool?
    /// The one member it is offered to (`/send PATH NAME`), by node id; absent for the room. Only
    /// that member's key can fetch it (`FetchProof`); the other members' peers do not show it.
    public var to: String?

    public init(file: String, name: String, size: Int, sha256: String, folder: Bool? = nil, to: NodeID? = nil) {
        self.file = file
        self.name = name
        self.size = size
        self.sha256 = sha256
        self.folder = folder
        self.to = to?.hex
    }

    public var isFolder: Bool { folder == true }
    public var recipient: NodeID? { to.flatMap(NodeID.init(hex:)) }

    /// Whether `viewer` may see this offer, made by `sender`: one to the room, or one it sent or
    /// that is to it (live, in the history shown on joining, in `/history`).
    public func isShown(to viewer: NodeID?, sentBy sender: NodeID) -> Bool {
        guard let recipient else { return true }
        return viewer == recipient || viewer == sender
    }

    /// The longest name an offer may carry (bytes of UTF-8), as most file systems allow.
    public static let maximumNameBytes = 255

    public static func randomToken() -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) }.hexString
    }

    public static func isToken(_ text: String) -> Bool { isHex(text, count: 32) }

    static func isHex(_ text: String, count: Int) -> Bool {
        text.utf8.count == count && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// The record's text: JSON with sorted keys.
    public var text: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! encoder.encode(self), as: UTF8.self)  // our own value type: cannot fail
    }

    /// An offer read from a record's text; nil for anything malformed or out of range (the record
    /// is then shown as nothing: a peer may send anything).
    public init?(text: String) {
        guard let offer = try? JSONDecoder().decode(FileOffer.self, from: Data(text.utf8)),
              FileOffer.isToken(offer.file), FileOffer.isHex(offer.sha256, count: 64),
              offer.size >= 0, offer.size <= WireRanges.largest,
              !offer.name.isEmpty, offer.name.utf8.count <= FileOffer.maximumNameBytes,
              offer.to == nil || offer.recipient != nil else { return nil }
        self = offer
    }
}

extension String {
    /// The parts of a path between its slashes, empty ones left out, split where the file system
    /// splits: at every `/` scalar. Splitting by `Character` would not see a `/` that a combining
    /// mark follows (`a/\u{301}b` is one Character-wise part, two on disk).
    public var pathParts: [String] {
        unicodeScalars.split(separator: "/").map { String($0) }
    }
}

/// Names from the network made safe to create in the downloads directory: no path separators,
/// no leading dot, no whitespace at either end, no control or invisible characters, bounded
/// length, never empty; a safe name is left as it is.
public enum SafeFileName {
    public static func make(_ offered: String) -> String {
        var scalars = String.UnicodeScalarView()
        for scalar in offered.unicodeScalars {
            if scalar == "/" || scalar == "\\" || scalar.value == 0 { scalars.append("_"); continue }
            // A terminal may show a tab (`DisplayText`), but in a name it is a control character.
            if scalar == "\t" { scalars.append(" "); continue }
            if DisplayText.isUnsafe(scalar) || scalar.properties.generalCategory == .format { continue }
            scalars.append(scalar)
        }
        // Dots and whitespace off the front together, scalar by scalar: ". .x" must not end as
        // ".x", and a dot carrying a combining mark is still a leading dot to the file system.
        while let first = scalars.first, first == "." || first.properties.isWhitespace { scalars.removeFirst() }
        var name = String(scalars)
        // Bounded in bytes, cut at a character boundary; whitespace off the end after the cut,
        // which may have laid some bare.
        while name.utf8.count > 200 { name.removeLast() }
        while let last = name.unicodeScalars.last, last.properties.isWhitespace { name.unicodeScalars.removeLast() }
        return name.isEmpty ? "file" : name
    }

    /// `name`, or `name (1).ext`, `name (2).ext`, … : the first that `taken` says is free, so an
    /// existing file is never overwritten.
    public static func unused(_ name: String, taken: (String) -> Bool) -> String {
        guard taken(name) else { return name }
        let (stem, ext) = split(name)
        var n = 1
        while true {
            let candidate = "\(stem) (\(n))\(ext)"
            if !taken(candidate) { return candidate }
            n += 1
        }
    }

    /// `report.pdf` → (`report`, `.pdf`); `archive.tar.gz` → (`archive.tar`, `.gz`); no dot → no extension.
    static func split(_ name: String) -> (String, String) {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return (name, "") }
        return (String(name[..<dot]), String(name[dot...]))
    }
}

/// Whom `/send PATH NAME` offers to: the member of that name (under `NameRule.sameName`, so case
/// and look-alikes do not matter), never this peer itself.
public enum FileRecipient: Equatable, Sendable {
    case member(NodeID)
    case nobodyCalled(String)
    case yourself(String)

    public init(named name: String, among members: [Member], me: NodeID) {
        guard let member = members.first(where: { NameRule.sameName($0.name, name) }) else {
            self = .nobodyCalled(name)
            return
        }
        self = member.node == me ? .yourself(name) : .member(member.node)
    }
}

/// The offers this peer has seen, numbered in the order seen (the room's order, so the numbers
/// agree between peers that saw the same history): `/get 3` names one. An offer is open while
/// its sender is in the room.
public struct FileBoard: Sendable {
    public struct Entry: Equatable, Sendable {
        public var id: Int
        public var offer: FileOffer
        public var from: String
        public var sender: NodeID
        public var open: Bool
        /// When its sender posted it (milliseconds since 1970, the record's own time): a joiner
        /// sees an offer from the history at the time it was made, as the lines around it.
        public var time: Int64 = 0
        /// The name of the member it is offered to, as this peer knows it (filled in for display;
        /// nil for an offer to the room).
        public var recipientName: String?
        /// Offered to this peer alone (filled in for display).
        public var toViewer = false

        /// Whether `viewer` may see this offer: one to the room, or one it sent or that is to it.
        /// Entries for others keep their numbers (so numbers agree across the room) but are not
        /// shown, listed or fetched.
        public func isShown(to viewer: NodeID?) -> Bool { offer.isShown(to: viewer, sentBy: sender) }
    }

    private var entries: [Entry] = []
    private var bySender: [MessageID: Int] = [:]
    /// Who is in the room, once known: an offer first seen in history from someone who left
    /// before this peer came is not open.
    public var present: Set<NodeID>?

    public init() {}

    /// A record of kind `offer`: its entry, and whether it is new here (a record seen again, after
    /// a host change or in history, keeps its number). Nil when its text is not an offer.
    public mutating func saw(_ record: ChatRecord) -> (Entry, new: Bool)? {
        if let index = bySender[record.id] { return (entries[index], false) }
        guard let offer = FileOffer(text: record.text) else { return nil }
        let entry = Entry(id: entries.count + 1, offer: offer, from: record.from, sender: record.id.node,
                          open: present?.contains(record.id.node) ?? true, time: record.time)
        bySender[record.id] = entries.count
        entries.append(entry)
        return (entry, true)
    }

    /// The sender left: its open offers end (returned, to tell the user).
    public mutating func senderLeft(_ node: NodeID) -> [Entry] {
        present?.remove(node)
        var ended: [Entry] = []
        for index in entries.indices where entries[index].sender == node && entries[index].open {
            entries[index].open = false
            ended.append(entries[index])
        }
        return ended
    }

    /// The sender is back (its link to the room was cut and it resumed, or it joined again with
    /// the same key): its offers are open again. A new run of it serves the files its earlier runs
    /// offered (`OfferedFiles`); one that no longer has the file, or a folder, answers a fetch
    /// with `no_file`, which the fetcher shows.
    /// The offers that were ended and are open again are returned, to tell the user (a download
    /// cut when the sender left resumes now).
    @discardableResult
    public mutating func senderReturned(_ node: NodeID) -> [Entry] {
        present?.insert(node)
        var reopened: [Entry] = []
        for index in entries.indices where entries[index].sender == node {
            if !entries[index].open { reopened.append(entries[index]) }
            entries[index].open = true
        }
        return reopened
    }

    /// The room as this peer enters it: offers whose sender is not among `present` (this peer
    /// was away when it left) end, and those whose sender is there are open (it may have left
    /// and come back while this peer was away).
    public mutating func keepOnly(senders present: Set<NodeID>) -> [Entry] {
        self.present = present
        for index in entries.indices where present.contains(entries[index].sender) { entries[index].open = true }
        return Set(entries.filter { $0.open && !present.contains($0.sender) }.map(\.sender)).flatMap { senderLeft($0) }
    }

    /// A sender's own offer, by its token.
    public func entry(file token: String, from sender: NodeID) -> Entry? {
        entries.first { $0.offer.file == token && $0.sender == sender }
    }

    /// Whether the offer of this record was seen, is not open (its sender is not in the room),
    /// and is one `viewer` may see.
    public func isClosedOffer(_ record: MessageID, shownTo viewer: NodeID?) -> Bool {
        bySender[record].map { !entries[$0].open && entries[$0].isShown(to: viewer) } ?? false
    }

        public func entry(_ id: Int) -> Entry? { entries.indices.contains(id - 1) ? entries[id - 1] : nil }
    public var open: [Entry] { entries.filter(\.open) }
}

/// A command's argument split as a shell user types it: words apart by spaces, `"…"` and `'…'`
/// quote, a backslash escapes the next character. Nil for an unclosed quote.
public enum ShellWords {
    public static func split(_ text: String) -> [String]? {
        var words: [String] = []
        var word = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for character in text {
            if escaped {
                word.append(character)
                escaped = false
                continue
            }
            if character == "\\" && quote != "'" {
                escaped = true
                inWord = true
                continue
            }
            if let open = quote {
                if character == open { quote = nil } else { word.append(character) }
                continue
            }
            if character == "\"" || character == "'" {
                quote = character
                inWord = true
            } else if character == " " || character == "\t" {
                if inWord { words.append(word) }
                word = ""
                inWord = false
            } else {
                word.append(character)
                inWord = true
            }
        }
        guard quote == nil, !escaped else { return nil }
        if inWord { words.append(word) }
        return words
    }
}

extension ShellWords {
    /// `word` as one shell word: spaces, quotes and backslashes escaped with a backslash.
    public static func escape(_ word: String) -> String {
        var out = ""
        for character in word {
            if character == " " || character == "\"" || character == "'" || character == "\\" || character == "\t" { out.append("\\") }
            out.append(character)
        }
        return out
    }
}

/// Sizes for people: `2.4 MB`, `512 B` (decimal units, as file managers show them).
public enum ByteCount {
    public static func describe(_ bytes: Int) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1000 && unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        if unit == 0 { return "\(bytes) B" }
        let rounded = (value * 10).rounded() / 10
        return "\(rounded) \(units[unit])"
    }
}

/// SHA-256 over a file read in pieces (the offer's hash, and the receiver's check).
public struct FileHasher: Sendable {
    private var hash = SHA256()
    public init() {}
    public mutating func update(_ bytes: UnsafeRawBufferPointer) { hash.update(bufferPointer: bytes) }
    public mutating func update(_ bytes: [UInt8]) { hash.update(data: bytes) }
    public func hex() -> String { Array(hash.finalize()).hexString }
}
