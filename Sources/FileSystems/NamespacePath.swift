/// A path inside a filesystem or the assembled namespace: normalised raw-byte components below
/// the root, never "", "." or "..". Built lexically (a ".." at the top stays at the top, as the
/// kernel's path walk does at "/"), so no value of this type can name anything outside its root.
///
/// The one path type of fwassemble: readers, the walk, the namespace engine, the mount planner
/// and the Docker inspector take and give paths as this value; conversion to and from text
/// happens at the edges (`init(_ text:)`, `display`).
public struct NamespacePath: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The components below the root, each non-empty, without "/" or NUL.
    public private(set) var components: [[UInt8]]

    /// The root.
    public static let root = NamespacePath(normalised: [])

    private init(normalised: [[UInt8]]) {
        components = normalised
    }

    /// Normalises raw path bytes ("/etc/../etc//fstab", "etc/fstab" and "./etc/fstab" are all
    /// "/etc/fstab").
    public init(bytes: some Collection<UInt8>) {
        self.init(normalised: [])
        for part in bytes.split(separator: 0x2F, omittingEmptySubsequences: true) {
            append(Array(part))
        }
    }

    /// Normalises a textual path.
    public init(_ text: String) {
        self.init(bytes: Array(text.utf8))
    }

    /// The components, normalised (".", "" dropped; ".." removes the previous one).
    public init(components parts: some Sequence<[UInt8]>) {
        self.init(normalised: [])
        for part in parts { append(part) }
    }

    /// Appends one component lexically: "." and "" are ignored, ".." goes up (not above the root).
    public mutating func append(_ component: [UInt8]) {
        if component.isEmpty || component == [0x2E] { return }
        if component == [0x2E, 0x2E] {
            _ = components.popLast()
            return
        }
        components.append(component)
    }

    /// This path with a relative path (raw bytes, "/" separated) appended lexically.
    public func appending(_ relative: some Collection<UInt8>) -> NamespacePath {
        var copy = self
        for part in relative.split(separator: 0x2F, omittingEmptySubsequences: true) { copy.append(Array(part)) }
        return copy
    }

    /// This path with one more name (a directory entry's, already a single component).
    public func child(_ name: [UInt8]) -> NamespacePath {
        var copy = self
        copy.append(name)
        return copy
    }

    public var isRoot: Bool { components.isEmpty }
    public var depth: Int { components.count }
    /// The last component, nil for the root.
    public var name: [UInt8]? { components.last }

    /// The parent directory (the root's parent is the root).
    public var parent: NamespacePath {
        NamespacePath(normalised: Array(components.dropLast()))
    }

    /// True when `self` is `other` or lies below it.
    public func isWithin(_ other: NamespacePath) -> Bool {
        components.count >= other.components.count && components.starts(with: other.components)
    }

    /// The components below `ancestor` (nil when `self` is not within it).
    public func relative(to ancestor: NamespacePath) -> [[UInt8]]? {
        isWithin(ancestor) ? Array(components.dropFirst(ancestor.components.count)) : nil
    }

    /// Raw bytes below the root, without a leading "/": "" for the root, "etc/fstab" below it
    /// (the form tar member names and walk entries use).
    public var relativeBytes: [UInt8] { Array(components.joined(separator: [0x2F])) }

    /// For messages: "/etc/fstab" (invalid UTF-8 shown with replacement characters).
    public var display: String { "/" + String(decoding: relativeBytes, as: UTF8.self) }

    public var description: String { display }

    /// Walk order: component by component, bytewise; a parent before its children.
    public static func < (a: NamespacePath, b: NamespacePath) -> Bool {
        for (x, y) in zip(a.components, b.components) where x != y { return x.lexicographicallyPrecedes(y) }
        return a.components.count < b.components.count
    }

    /// One component of a path, as a name read from untrusted data (a container, image or layer
    /// id that names a directory) must be before it is joined to a path: not empty, at most 255
    /// bytes (NAME_MAX), no "/" or NUL, not "." or "..". The one check for such names
    /// (swift-system's `FilePath.Component`): a value of this type cannot climb out of the
    /// directory it is appended to.
    public struct Component: Hashable, Sendable, CustomStringConvertible {
        public let bytes: [UInt8]

        /// nil when `bytes` is not a single component.
        public init?(bytes: some Collection<UInt8>) {
            let b = Array(bytes)
            guard Self.isName(b), b.count <= 255 else { return nil }
            self.bytes = b
        }

        /// The rule without its length limit: not empty, no "/" or NUL, not "." or "..". A tar
        /// member's path is made of such names (a FAT long name can be longer than 255 bytes).
        public static func isName(_ bytes: some Collection<UInt8>) -> Bool {
            let b = Array(bytes)
            return NamespacePath.isValidName(b) && !NamespacePath.isDotEntry(b)
        }

        public init?(_ text: String) { self.init(bytes: text.utf8) }

        public var text: String { String(decoding: bytes, as: UTF8.self) }
        public var description: String { text }
    }

    /// A name a directory entry can carry: not empty, no "/" or NUL ("." and ".." are the
    /// directory's own links and never walked).
    public static func isValidName(_ name: [UInt8]) -> Bool {
        !name.isEmpty && !name.contains(0x2F) && !name.contains(0)
    }

    /// "." or "..".
    public static func isDotEntry(_ name: [UInt8]) -> Bool {
        name == [0x2E] || name == [0x2E, 0x2E]
    }
}

/// Paths counted, the first few kept by name: what a warning about skipped or changed entries
/// says ("a/x, b/y and 3 more"), so nothing is dropped silently and nothing grows with the input.
public struct PathSample: Sendable, Equatable {
    /// How many paths a warning names before "and N more".
    public static let named = 5
    public private(set) var count = 0
    public private(set) var first: [String] = []

    public init() {}

    public mutating func add(_ path: String) {
        count += 1
        if first.count < Self.named { first.append(path) }
    }

    /// The named paths, then how many more: "a/x, b/y and 3 more".
    public var listed: String {
        first.joined(separator: ", ") + (count > first.count ? " and \(count - first.count) more" : "")
    }
}
