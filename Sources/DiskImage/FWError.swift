/// The one error type of fwassemble: what went wrong, where (image, partition, path), and the
/// underlying error when one was wrapped.
///
/// Every layer throws this type so that a message reaching the user always names the disk image,
/// the partition and the path inside the filesystem that were being read, each once:
/// "disk.img partition 3 (hassos-data): /etc/fstab: short read ...".
public struct FWError: Error, Sendable, CustomStringConvertible, Equatable {
    /// A broad category, stable across releases (the C ABI maps it to error codes). A struct so
    /// that a new code can be added without breaking a client that switches over the old ones.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Kind: String {
            case io, notFound, corrupt, unsupported, limitExceeded, invalidArgument, cancelled
        }

        private let kind: Kind

        private init(_ kind: Kind) { self.kind = kind }

        /// An I/O error from the operating system.
        public static let io = Code(.io)
        /// A file, partition or path that does not exist.
        public static let notFound = Code(.notFound)
        /// On-disk data that breaks its format's rules.
        public static let corrupt = Code(.corrupt)
        /// A valid format or feature that fwassemble does not handle yet.
        public static let unsupported = Code(.unsupported)
        /// A safety limit (size, depth, count) was exceeded.
        public static let limitExceeded = Code(.limitExceeded)
        /// A bad argument from the caller.
        public static let invalidArgument = Code(.invalidArgument)
        /// The job was stopped by its caller (a signal, Ctrl-C in Python, `Cancellation.cancel`).
        public static let cancelled = Code(.cancelled)

        /// The stable name: "io", "notFound", "corrupt", "unsupported", "limitExceeded",
        /// "invalidArgument", "cancelled" (the C ABI maps it to its FWA_ERR_* numbers).
        public var name: String { kind.rawValue }
        /// The same as `name` (the raw value of the enum this type replaced).
        public var rawValue: String { kind.rawValue }
        public var description: String { kind.rawValue }
    }

    /// Where bytes are read from: the disk image, and the partition inside it when there is one.
    /// A byte source and a filesystem reader carry one, and every error they throw names it.
    public struct Place: Sendable, Hashable, CustomStringConvertible {
        /// The disk image (file name as given by the user).
        public var disk: String?
        /// The part of the image: "partition 3 (hassos-data)", "(whole image)",
        /// "partition 5 at offset 4194304".
        public var partition: String?

        public init(disk: String? = nil, partition: String? = nil) {
            self.disk = disk
            self.partition = partition
        }

        /// "disk.img partition 3 (hassos-data)", "disk.img (whole image)", "disk.img".
        public var description: String {
            [disk, partition].compactMap { $0 }.joined(separator: " ")
        }
    }

    public var code: Code
    public var message: String
    /// The disk image (file name as given by the user), and nothing else.
    public var disk: String?
    /// The partition, as "partition 3" or "partition 3 (hassos-data)"; "(whole image)" for a
    /// filesystem with no partition table.
    public var partition: String?
    /// The path inside the filesystem being read.
    public var path: String?
    /// The error this one wraps (a Foundation or decoding error, an error of another layer),
    /// kept for callers that want it; `description` does not repeat it.
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, disk: String? = nil, partition: String? = nil, path: String? = nil,
                cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.disk = disk
        self.partition = partition
        self.path = path
        self.cause = cause
    }

    /// An error at `place` (the image and partition a byte source or reader names).
    public init(_ code: Code, _ message: String, at place: Place, path: String? = nil, cause: (any Error & Sendable)? = nil) {
        self.init(code, message, disk: place.disk, partition: place.partition, path: path, cause: cause)
    }

    /// Any error as an `FWError`: an `FWError` as it is; anything else as `.io` with the error's
    /// own text as the message, kept as `cause`. Use `.message` or `.description` of the result
    /// instead of stringifying an error by hand.
    public init(_ error: any Error) {
        if let e = error as? FWError {
            self = e
        } else {
            self.init(.io, "\(error)", cause: error)
        }
    }

    /// Where the error happened (image and partition).
    public var place: Place { Place(disk: disk, partition: partition) }

    /// "IMAGE PARTITION: PATH: MESSAGE", each part present once, missing ones left out.
    public var description: String {
        var parts: [String] = []
        let where_ = place.description
        if !where_.isEmpty { parts.append(where_) }
        if let path { parts.append(path) }
        parts.append(message)
        return parts.joined(separator: ": ")
    }

    /// The same error with missing context filled in (existing context is kept).
    public func within(disk: String? = nil, partition: String? = nil, path: String? = nil) -> FWError {
        var copy = self
        if copy.disk == nil { copy.disk = disk }
        if copy.partition == nil { copy.partition = partition }
        if copy.path == nil { copy.path = path }
        return copy
    }

    /// The same error with the image and partition of `place` filled in where missing.
    public func within(_ place: Place, path: String? = nil) -> FWError {
        within(disk: place.disk, partition: place.partition, path: path)
    }

    /// Equal when code, message and places are; the cause is not compared.
    public static func == (a: FWError, b: FWError) -> Bool {
        a.code == b.code && a.message == b.message && a.disk == b.disk && a.partition == b.partition && a.path == b.path
    }

    public static func corrupt(_ message: String) -> FWError { FWError(.corrupt, message) }
    public static func unsupported(_ message: String) -> FWError { FWError(.unsupported, message) }
}

extension FWError.Place {
    /// Runs `body`; an `FWError` it throws gets this place's image and partition where it has
    /// none (a reader's errors name the filesystem they come from).
    public func placing<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as FWError {
            throw error.within(self)
        }
    }
}
