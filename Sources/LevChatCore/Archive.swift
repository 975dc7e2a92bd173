/// A folder sent as one file (Docs/PROTOCOL.md, "Folders"): a POSIX ustar archive holding only
/// directories and regular files. ustar because any `tar` reads it (a user can unpack a `.part`
/// by hand), it streams, and its 512-byte headers are simple enough to parse strictly; its
/// limits (8 GiB a file, 255-byte paths split at a `/`) are refused at `/send` with a sentence.
/// Links, devices, pax and GNU extensions are never written and are refused when read.
public enum Ustar {
    public static let block = 512
    public static let maximumFileSize = (1 << 33) - 1

    public enum Kind: Equatable, Sendable {
        case directory
        case file(size: Int)
    }

    public enum ArchiveError: Error, Equatable, CustomStringConvertible {
        case pathTooLong(String)
        case fileTooLarge(String)
        case badChecksum
        case notUstar
        case badNumber(String)
        case unsupportedEntry(String, UInt8)
        case escapingPath(String)
        case truncated

        public var description: String {
            switch self {
            case .pathTooLong(let path): "the path \(path) is too long for the archive (255 bytes, split at a /)"
            case .fileTooLarge(let path): "\(path) is larger than 8 GiB, which the archive cannot hold"
            case .badChecksum: "an archive header with a wrong checksum"
            case .notUstar: "not a ustar archive"
            case .badNumber(let field): "an archive header with a bad \(field)"
            case .unsupportedEntry(let path, let type): "\(path) is neither a file nor a folder (type \(type)); not unpacked"
            case .escapingPath(let path): "the entry \(path) would land outside the folder"
            case .truncated: "the archive ends in the middle of an entry"
            }
        }
    }

    /// The header of one entry; `path` is relative, components joined by `/`.
    public static func header(path: String, kind: Kind, mode: Int, mtime: Int) throws(ArchiveError) -> [UInt8] {
        let stored = kind == .directory ? path + "/" : path
        let (prefix, name) = try split(stored)
        var out = [UInt8](repeating: 0, count: block)
        func put(_ bytes: some Collection<UInt8>, at offset: Int) {
            for (i, byte) in bytes.enumerated() { out[offset + i] = byte }
        }
        func octal(_ value: Int, width: Int, at offset: Int) {
            let digits = String(value, radix: 8)
            put(Array((String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits).utf8), at: offset)
        }
        put(Array(name.utf8), at: 0)
        octal(mode & 0o7777, width: 8, at: 100)
        octal(0, width: 8, at: 108)
        octal(0, width: 8, at: 116)
        switch kind {
        case .directory: octal(0, width: 12, at: 124)
        case .file(let size):
            guard size <= maximumFileSize else { throw .fileTooLarge(path) }
            octal(size, width: 12, at: 124)
        }
        octal(max(0, min(mtime, (1 << 33) - 1)), width: 12, at: 136)
        out[156] = kind == .directory ? UInt8(ascii: "5") : UInt8(ascii: "0")
        put(Array("ustar\0".utf8), at: 257)
        put(Array("00".utf8), at: 263)
        put(Array(prefix.utf8), at: 345)
        put(Array(repeating: UInt8(ascii: " "), count: 8), at: 148)
        let sum = out.reduce(0) { $0 + Int($1) }
        let digits = String(sum, radix: 8)
        put(Array((String(repeating: "0", count: max(0, 6 - digits.count)) + digits).utf8) + [0, UInt8(ascii: " ")], at: 148)
        return out
    }

    /// Zero bytes that end an entry of `size` bytes on a block boundary.
    public static func padding(after size: Int) -> Int { (block - size % block) % block }

    /// The two zero blocks that end an archive.
    public static let end = [UInt8](repeating: 0, count: 2 * block)

    /// `name` (≤ 100 bytes) and `prefix` (≤ 155 bytes), split at a `/`.
    static func split(_ path: String) throws(ArchiveError) -> (prefix: String, name: String) {
        let bytes = Array(path.utf8)
        if bytes.count <= 100 { return ("", path) }
        guard bytes.count <= 256 else { throw .pathTooLong(path) }
        // The last `/` that leaves at most 155 bytes before it and at most 100 after.
        for index in stride(from: min(155, bytes.count - 1), through: 1, by: -1) where bytes[index] == UInt8(ascii: "/") {
            let name = bytes[(index + 1)...]
            guard name.count <= 100, !name.isEmpty else { break }
            return (String(decoding: bytes[..<index], as: UTF8.self), String(decoding: name, as: UTF8.self))
        }
        throw .pathTooLong(path)
    }

    /// A relative path from an archive made safe to create under a new folder: its components,
    /// each a safe file name (`SafeFileName`), or an error when it names the root, goes up
    /// (`..`) or is absolute. Nothing that passes can land outside the folder (`FilesTests`).
    public static func components(of path: String) throws(ArchiveError) -> [String] {
        guard path.unicodeScalars.first != "/" else { throw .escapingPath(path) }
        var parts: [String] = []
        for part in path.pathParts {
            if part == "." { continue }
            guard part != ".." else { throw .escapingPath(path) }
            parts.append(SafeFileName.make(part))
        }
        guard !parts.isEmpty else { throw .escapingPath(path) }
        return parts
    }

    /// One entry read from a header block: where it goes and what it is. Nil for a zero block
    /// (the end of the archive).
    public static func entry(_ header: [UInt8]) throws(ArchiveError) -> (path: [String], kind: Kind)? {
        guard header.count == block else { throw .truncated }
        if header.allSatisfy({ $0 == 0 }) { return nil }
        guard header[257..<262].elementsEqual("ustar".utf8) else { throw .notUstar }
        var summed = header
        for i in 148..<156 { summed[i] = UInt8(ascii: " ") }
        guard try number(header[148..<156], "checksum") == summed.reduce(0, { $0 + Int($1) }) else { throw .badChecksum }
        let name = text(header[0..<100]), prefix = text(header[345..<500])
        let path = prefix.isEmpty ? name : prefix + "/" + name
        let type = header[156]
        switch type {
        case UInt8(ascii: "0"), 0:
            return (try components(of: path), .file(size: try number(header[124..<136], "size")))
        case UInt8(ascii: "5"):
            return (try components(of: path), .directory)
        default:
            throw .unsupportedEntry(DisplayText.sanitize(path), type)
        }
    }

    /// The mode a file of the archive is made with: executable (by everyone, before the umask)
    /// when its sender's was executable by anyone, as `tar` and `cp` keep it (a script stays a
    /// script); never set-id or sticky, nor more open than the umask allows. A mode field that
    /// cannot be read counts as not executable.
    public static func creationMode(_ header: [UInt8]) -> UInt32 {
        guard header.count == block, let mode = try? number(header[100..<108], "mode") else { return 0o666 }
        return mode & 0o111 != 0 ? 0o777 : 0o666
    }

    private static func text(_ field: ArraySlice<UInt8>) -> String {
        String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// An octal field: digits, then NUL or spaces.
    private static func number(_ field: ArraySlice<UInt8>, _ what: String) throws(ArchiveError) -> Int {
        var value = 0
        var digits = 0
        var ended = false
        for byte in field {
            if byte == 0 || byte == UInt8(ascii: " ") {
                if digits > 0 { ended = true }
                continue
            }
            guard !ended, (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(byte), digits < 11 else { throw .badNumber(what) }
            value = value * 8 + Int(byte - UInt8(ascii: "0"))
            digits += 1
        }
        guard digits > 0 else { throw .badNumber(what) }
        return value
    }
}
