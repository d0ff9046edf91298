// Node 20 is Cairn's fixed runtime; the AWS SDK's notice about its future Node 22 floor is noise
// in every log. Imported first by the entry points.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
