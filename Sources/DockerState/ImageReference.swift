/// An image reference read as Docker reads one (github.com/distribution/reference
/// `ParseNormalizedNamed`, normalize.go and regexp.go): `[domain/]path[:tag][@digest]`.
/// - domain: the first `/`-separated part when it is `localhost`, contains `.` or `:`, or has an
///   uppercase letter (`index.docker.io` is `docker.io`); otherwise `docker.io`, where a one-part
///   path gets `library/` (`alpine` is `docker.io/library/alpine`);
/// - path: lowercase components `[a-z0-9]+` joined by `.`, `_`, `__` or dashes, separated by `/`;
///   domain plus path at most 255 characters;
/// - tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`;
/// - digest: `algorithm:hex` (sha256: 64 lowercase hex digits).
/// A bare 64-hex-digit string is an image id, not a reference (nil), as for Docker.
public struct ImageReference: Sendable, Hashable, CustomStringConvertible {
    public static let defaultDomain = "docker.io"
    public var domain: String
    public var path: String
    public var tag: String?
    public var digest: String?

    public init?(_ text: String) {
        if text.count == 64, text.allSatisfy(\.isLowercaseHex) { return nil }
        var rest = Substring(text)
        if let at = rest.firstIndex(of: "@") {
            let d = String(rest[rest.index(after: at)...])
            guard Self.isDigest(d) else { return nil }
            digest = d
            rest = rest[..<at]
        }
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            let t = String(rest[rest.index(after: colon)...])
            guard Self.isTag(t) else { return nil }
            tag = t
            rest = rest[..<colon]
        }
        (domain, path) = Self.splitDomain(String(rest))
        guard Self.isDomain(domain), !path.isEmpty, path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy(Self.isPathComponent),
              domain.count + 1 + path.count <= 255 else { return nil }
    }

    /// `docker.io/library/alpine`: the repository, fully qualified.
    public var name: String { "\(domain)/\(path)" }

    /// The repository as Docker shows it (`FamiliarName`): `docker.io/` dropped, and `library/`
    /// too when one component remains (`alpine`, `realdev/base`, `localhost:5000/x`).
    public var familiarName: String {
        guard domain == Self.defaultDomain else { return name }
        if path.hasPrefix("library/"), !path.dropFirst(8).contains("/") { return String(path.dropFirst(8)) }
        return path
    }

    /// `FamiliarString`: the familiar name with its tag and digest.
    public var familiar: String { familiarName + suffix }

    /// The full reference (`docker.io/library/alpine:3@sha256:...`).
    public var description: String { name + suffix }

    private var suffix: String { (tag.map { ":" + $0 } ?? "") + (digest.map { "@" + $0 } ?? "") }

    /// `TagNameOnly`: `:latest` added when there is neither a tag nor a digest.
    public var withDefaultTag: ImageReference {
        var r = self
        if r.tag == nil, r.digest == nil { r.tag = "latest" }
        return r
    }

    /// The repository with `digest` and no tag (`WithDigest(TrimNamed(ref), digest)`).
    public func with(digest: String) -> ImageReference {
        var r = self
        r.tag = nil
        r.digest = digest
        return r
    }

    // MARK: Grammar

    static func splitDomain(_ name: String) -> (String, String) {
        var domain = defaultDomain, path = name
        if let slash = name.firstIndex(of: "/") {
            let first = String(name[..<slash])
            if first == "localhost" || first.contains(".") || first.contains(":") || first.lowercased() != first {
                (domain, path) = (first, String(name[name.index(after: slash)...]))
            }
            if domain == "index.docker.io" { domain = defaultDomain }
        }
        if domain == defaultDomain, !path.contains("/") { path = "library/" + path }
        return (domain, path)
    }

    /// `[a-z0-9]+` runs joined by exactly one separator: `.`, `_`, `__`, or one or more `-`.
    static func isPathComponent(_ component: Substring) -> Bool {
        var separator = ""
        guard let first = component.first, first.isLowercaseAlphanumeric, component.last?.isLowercaseAlphanumeric == true else { return false }
        for c in component {
            if c.isLowercaseAlphanumeric {
                guard separator.isEmpty || separator == "." || separator == "_" || separator == "__" || separator.allSatisfy({ $0 == "-" }) else {
                    return false
                }
                separator = ""
            } else if c == "." || c == "_" || c == "-" {
                separator.append(c)
            } else {
                return false
            }
        }
        return true
    }

    /// Host labels `[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?` joined by `.`, or `[IPv6]`, with an optional `:port`.
    static func isDomain(_ domain: String) -> Bool {
        var host = Substring(domain)
        if let colon = domain.lastIndex(of: ":"), !domain[colon...].contains("]") {
            let port = domain[domain.index(after: colon)...]
            guard !port.isEmpty, port.allSatisfy(\.isASCIIDigit) else { return false }
            host = domain[..<colon]
        }
        if host.hasPrefix("[") {
            return host.count > 2 && host.hasSuffix("]") && host.dropFirst().dropLast().allSatisfy { $0.isHexDigit && $0.isASCII || $0 == ":" }
        }
        return host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            guard let f = label.first, let l = label.last else { return false }
            return f.isASCIIAlphanumeric && l.isASCIIAlphanumeric && label.allSatisfy { $0.isASCIIAlphanumeric || $0 == "-" }
        }
    }

    static func isTag(_ tag: String) -> Bool {
        guard let first = tag.first, tag.count <= 128, first.isASCIIAlphanumeric || first == "_" else { return false }
        return tag.allSatisfy { $0.isASCIIAlphanumeric || $0 == "_" || $0 == "." || $0 == "-" }
    }

    /// `algorithm:hex`, the algorithm `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*`, at least
    /// 32 hex digits; sha256 exactly 64 lowercase ones (go-digest's validation).
    static func isDigest(_ digest: String) -> Bool {
        guard let colon = digest.firstIndex(of: ":") else { return false }
        let algorithm = digest[..<colon], hex = digest[digest.index(after: colon)...]
        if algorithm == "sha256" { return hex.count == 64 && hex.allSatisfy(\.isLowercaseHex) }
        let parts = algorithm.split(omittingEmptySubsequences: false) { "-_+.".contains($0) }
        return hex.count >= 32 && hex.allSatisfy { $0.isHexDigit && $0.isASCII }
            && parts.allSatisfy { p in p.first?.isASCIILetter == true && p.allSatisfy(\.isASCIIAlphanumeric) }
    }
}

extension Character {
    var isLowercaseHex: Bool { isASCII && (isNumber || ("a"..."f").contains(self)) }
    var isASCIIDigit: Bool { isASCII && isNumber }
    var isASCIILetter: Bool { isASCII && isLetter }
    var isASCIIAlphanumeric: Bool { isASCII && (isLetter || isNumber) }
    var isLowercaseAlphanumeric: Bool { isASCII && (isNumber || ("a"..."z").contains(self)) }
}
