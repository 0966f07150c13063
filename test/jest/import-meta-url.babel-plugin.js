/**
 * Babel plugin for Jest: rewrites `import.meta.url` in ES modules compiled to CommonJS into the
 * file URL of `__filename`, without touching `require` (some modules declare their own `require`).
 */
module.exports = function importMetaUrl({ types: t }) {
  return {
    visitor: {
      MetaProperty(path) {
        if (path.node.meta.name !== 'import' || path.node.property.name !== 'meta') return;
        const parent = path.parentPath;
        if (parent.isMemberExpression() && t.isIdentifier(parent.node.property, { name: 'url' })) {
          parent.replaceWith(
            t.binaryExpression('+', t.stringLiteral('file://'), t.identifier('__filename')),
          );
        } else {
          path.replaceWith(
            t.objectExpression([
              t.objectProperty(
                t.identifier('url'),
                t.binaryExpression('+', t.stringLiteral('file://'), t.identifier('__filename')),
              ),
            ]),
          );
        }
      },
    },
  };
};
